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
    /// A stored row does not read as this version expects: a column is
    /// missing or of another type, or holds a value it never writes (an
    /// unknown status, JSON that does not parse). The schema or the data
    /// drifted; the row is refused rather than guessed at.
    #[error("stored data does not decode: column {column}: {message}")]
    Decode { column: String, message: String },
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

impl StoreError {
    pub(crate) fn decode(column: impl std::fmt::Display, error: impl std::fmt::Display) -> Self {
        StoreError::Decode {
            column: column.to_string(),
            message: error.to_string(),
        }
    }
}
