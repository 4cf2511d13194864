"""The pure decision core: no asyncio, no I/O, no clock reads; time is always a parameter."""
