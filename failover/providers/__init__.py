"""DNS providers: one file per provider, one small interface (`base.Provider`)."""
