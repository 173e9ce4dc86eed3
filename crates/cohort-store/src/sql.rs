//! Statements built at run time for the `Any` driver, which does not
//! number placeholders itself: values and `$n` markers are collected side
//! by side.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Float(f64),
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Statement {
    pub sql: String,
    binds: Vec<Bind>,
    /// Anonymous `?` markers, in order. SQLite finds a named or numbered
    /// marker by a linear search of the statement's names, so binding a
    /// thousand `$n` costs half a million comparisons; `?` costs none.
    /// Only for SQLite, and only where every value is bound in text order.
    positional: bool,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            binds: Vec::new(),
            positional: false,
        }
    }

    /// A statement whose markers are anonymous on SQLite (see `positional`).
    pub fn for_backend(backend: crate::Backend, sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            binds: Vec::new(),
            positional: backend == crate::Backend::Sqlite,
        }
    }

    /// Adds a value and returns its marker (`$3`, or `?`).
    pub fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        if self.positional {
            "?".to_owned()
        } else {
            format!("${}", self.binds.len())
        }
    }

    /// The statement for a read whose filters are chosen by the caller,
    /// planned for the values it is given. PostgreSQL plans a reused
    /// (persistent) statement once for any values after a few runs; for
    /// `event = $2 ORDER BY seq DESC LIMIT 1` that generic plan walked the
    /// whole log backwards when the name was rare (1.3 s on a million
    /// events for a name never seen, against 0.1 ms with the value known).
    pub fn query_planned_for_values(&self) -> Query<'_, Any, AnyArguments<'_>> {
        self.query().persistent(false)
    }

    pub fn push(&mut self, text: &str) {
        self.sql.push_str(text);
    }

    /// `($1, $2, …)` for a list of texts.
    pub fn in_list<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) -> String {
        let markers: Vec<String> = values
            .into_iter()
            .map(|v| self.bind(Bind::Text(v.to_owned())))
            .collect();
        format!("({})", markers.join(", "))
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for bind in &self.binds {
            q = match bind {
                Bind::Text(v) => q.bind(v.as_str()),
                Bind::OptText(v) => q.bind(v.as_deref()),
                Bind::Int(v) => q.bind(*v),
                Bind::OptInt(v) => q.bind(*v),
                Bind::Float(v) => q.bind(*v),
            };
        }
        q
    }
}

/// Rows per multi-row statement: keeps the placeholder count moderate.
pub(crate) const ROWS_PER_STATEMENT: usize = 100;

/// One `INSERT … VALUES (…), (…) <tail>` per chunk of rows.
pub(crate) fn multi_insert(
    backend: crate::Backend,
    head: &str,
    rows: &[Vec<Bind>],
    tail: &str,
) -> Vec<Statement> {
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let mut st = Statement::for_backend(backend, head);
            st.push(" VALUES ");
            for (i, row) in chunk.iter().enumerate() {
                if i > 0 {
                    st.push(", ");
                }
                let markers: Vec<String> = row.iter().cloned().map(|b| st.bind(b)).collect();
                st.push(&format!("({})", markers.join(", ")));
            }
            st.push(" ");
            st.push(tail);
            st
        })
        .collect()
}
