//! Checked reads of result rows. `sqlx::Row::get` panics when a column is
//! missing or holds another type; after a schema drift (a migration not
//! run, a column changed by hand) that would take a request or a worker
//! down. Every read in this crate goes through [`RowExt`] instead, so the
//! drift is a [`StoreError::Decode`] naming the column.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::{Any, Column, ColumnIndex, Decode, Row, Type};

use crate::StoreError;

pub(crate) trait RowExt {
    /// The value of `column` (a name or a position), or `Decode`.
    fn col<'r, T, I>(&'r self, column: I) -> Result<T, StoreError>
    where
        T: Decode<'r, Any> + Type<Any>,
        I: ColumnIndex<AnyRow> + Display + Copy;

    /// A text column holding one of an enum's stored values (`as_str`);
    /// an unknown value is `Decode`, not a default.
    fn col_parsed<T, I>(&self, column: I) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: Display,
        I: ColumnIndex<AnyRow> + Display + Copy;

    /// A text column holding JSON that Cohort wrote; text that does not
    /// parse is `Decode` (stored data is corrupt), never a silent default.
    fn col_json<T, I>(&self, column: I) -> Result<T, StoreError>
    where
        T: DeserializeOwned,
        I: ColumnIndex<AnyRow> + Display + Copy;
}

impl RowExt for AnyRow {
    fn col<'r, T, I>(&'r self, column: I) -> Result<T, StoreError>
    where
        T: Decode<'r, Any> + Type<Any>,
        I: ColumnIndex<AnyRow> + Display + Copy,
    {
        self.try_get(column)
            .map_err(|error| StoreError::decode(column_name(self, column), error))
    }

    fn col_parsed<T, I>(&self, column: I) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: Display,
        I: ColumnIndex<AnyRow> + Display + Copy,
    {
        let text: String = self.col(column)?;
        text.parse()
            .map_err(|error| StoreError::decode(column_name(self, column), error))
    }

    fn col_json<T, I>(&self, column: I) -> Result<T, StoreError>
    where
        T: DeserializeOwned,
        I: ColumnIndex<AnyRow> + Display + Copy,
    {
        let text: String = self.col(column)?;
        parse_json(column_name(self, column), &text)
    }
}

/// The name of the column a read asked for, positional reads included
/// (as the statement names it); the index as given when there is none.
fn column_name<I>(row: &AnyRow, column: I) -> String
where
    I: ColumnIndex<AnyRow> + Display + Copy,
{
    column
        .index(row)
        .ok()
        .and_then(|position| row.columns().get(position))
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| column.to_string())
}

/// Stored JSON text as `T`; `Decode` naming `column` when it does not parse.
pub(crate) fn parse_json<T: DeserializeOwned>(
    column: impl Display,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::decode(column, error))
}

/// Rows mapped one by one, the first decode error ending the read.
pub(crate) fn map_rows<T>(
    rows: &[AnyRow],
    map: impl Fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(map).collect()
}
