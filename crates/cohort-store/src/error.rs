#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("could not hash the password")]
    PasswordHash,
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// A key or sealed secret that cannot be read is invalid input, as before
/// the sealing moved to `cohort_domain::secrets`.
impl From<cohort_domain::secrets::SealError> for StoreError {
    fn from(error: cohort_domain::secrets::SealError) -> Self {
        StoreError::Invalid(error.to_string())
    }
}
