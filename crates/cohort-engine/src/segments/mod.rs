//! Saved segments: defining them (a rule in either face, checked, cycles
//! refused, members computed at once), reading them, previews that save
//! nothing, and live membership ([`membership`]): the worker that keeps
//! every segment's members current as events arrive and windows pass.
//!
//! Rules name other segments by name (`in segment "VIP"`): a segment
//! another rule names cannot be deleted or renamed (the rule would stop
//! meaning what it said); changing its rule recomputes the segments that
//! name it.

pub mod defaults;
pub mod membership;
pub mod model;
pub mod rfm;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use cohort_domain::ids::{new_id, OrgId};
use cohort_domain::profile::ProfileView;
use cohort_domain::segments::{find_cycle, parse, print, ParseError, Rule};
use cohort_store::segments::{
    CompileError, NewSegment, SaveError, SegmentMember, SegmentQueryError, SegmentRecord, SegmentTx,
};
use cohort_store::{Db, StoreError};

/// The instant rules are evaluated at, UTC µs. Injectable, so tests can
/// move time past a window's edge.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(cohort_store::now_micros)
}

/// A rule as a caller gives it: its text or its JSON AST.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSource {
    Text(String),
    Ast(Rule),
}

/// A new segment.
#[derive(Debug, Clone)]
pub struct SegmentDraft {
    pub name: String,
    pub description: Option<String>,
    pub rule: RuleSource,
}

/// Changes to a segment; `None` keeps what is there.
#[derive(Debug, Clone, Default)]
pub struct SegmentChangeset {
    pub name: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub rule: Option<RuleSource>,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The text does not parse.
    #[error("{0}")]
    InvalidRule(ParseError),
    /// The AST (or what a parse gave) breaks a rule the shape cannot say.
    #[error("{0}")]
    InvalidAst(String),
    #[error("segments form a cycle: {}", .0.join(" → "))]
    Cycle(Vec<String>),
    #[error("no segment is named \"{0}\"")]
    UnknownSegment(String),
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("a segment named \"{0}\" already exists")]
    NameTaken(String),
    #[error("segment not found")]
    NotFound,
    /// Deleting or renaming a segment other rules name.
    #[error("segment \"{name}\" is named by {}", .by.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", "))]
    Referenced { name: String, by: Vec<String> },
    /// Natural language the grammar could not make a rule of; `start` and
    /// `end` are byte offsets of the part that failed.
    #[error("{message}")]
    NotUnderstood {
        message: String,
        start: usize,
        end: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SegmentQueryError> for SegmentError {
    fn from(e: SegmentQueryError) -> Self {
        match e {
            SegmentQueryError::Rule(c) => c.into(),
            SegmentQueryError::Store(s) => SegmentError::Store(s),
        }
    }
}

impl From<CompileError> for SegmentError {
    fn from(e: CompileError) -> Self {
        match e {
            CompileError::UnknownSegment(n) => SegmentError::UnknownSegment(n),
            CompileError::Cycle(names) => SegmentError::Cycle(names),
            CompileError::Invalid(m) => SegmentError::InvalidAst(m),
        }
    }
}

impl From<SaveError> for SegmentError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::NameTaken(n) => SegmentError::NameTaken(n),
            SaveError::Store(s) => SegmentError::Store(s),
        }
    }
}

/// A preview: what a rule selects now, nothing saved.
#[derive(Debug, Clone)]
pub struct Preview {
    pub rule: Rule,
    pub text: String,
    pub count: i64,
    /// Up to [`PREVIEW_SAMPLE`] members, in id order.
    pub sample: Vec<ProfileView>,
}

pub const PREVIEW_SAMPLE: usize = 10;

/// The longest name a segment may have.
pub const NAME_MAX_CHARS: usize = 100;

/// Reasons recorded in the feed for changes a definition causes.
pub const REASON_CREATED: &str = "segment created";
pub const REASON_RULE_CHANGED: &str = "rule changed";
pub const REASON_DELETED: &str = "segment deleted";
pub const REASON_RECOMPUTE: &str = "recompute";

/// Parses or checks a rule: its AST and its canonical text.
pub fn read_rule(source: &RuleSource) -> Result<(Rule, String), SegmentError> {
    let rule = match source {
        RuleSource::Text(text) => parse(text).map_err(SegmentError::InvalidRule)?,
        RuleSource::Ast(rule) => rule.clone(),
    };
    rule.validate()
        .map_err(|e| SegmentError::InvalidAst(e.to_string()))?;
    let text = print(&rule);
    Ok((rule, text))
}

fn checked_name(name: &str) -> Result<String, SegmentError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(SegmentError::InvalidField {
            field: "name",
            message: "a segment needs a name".into(),
        });
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(SegmentError::InvalidField {
            field: "name",
            message: format!("at most {NAME_MAX_CHARS} characters"),
        });
    }
    Ok(name.to_owned())
}

fn checked_description(d: Option<String>) -> Result<Option<String>, SegmentError> {
    match d.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()) {
        Some(d) if d.chars().count() > 2000 => Err(SegmentError::InvalidField {
            field: "description",
            message: "at most 2000 characters".into(),
        }),
        d => Ok(d),
    }
}

/// The rules of an organisation's segments by name, for `in segment`.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    pub by_name: BTreeMap<String, Rule>,
}

impl RuleBook {
    pub fn of(records: &[SegmentRecord]) -> Self {
        Self {
            by_name: records
                .iter()
                .map(|r| (r.name.clone(), r.rule.clone()))
                .collect(),
        }
    }

    pub fn lookup(&self, name: &str) -> Option<Rule> {
        self.by_name.get(name).cloned()
    }

    /// The names of the segments whose rules name `name`, directly or
    /// through others.
    pub fn dependents_of(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut frontier = vec![name.to_owned()];
        while let Some(n) = frontier.pop() {
            for (other, rule) in &self.by_name {
                if cohort_domain::segments::dependencies(rule)
                    .segments
                    .contains(&n)
                    && out.insert(other.clone())
                {
                    frontier.push(other.clone());
                }
            }
        }
        out
    }
}

/// The segments service.
#[derive(Clone)]
pub struct Segments {
    db: Db,
    clock: Clock,
    /// The operator's model for natural language, when configured.
    model: Option<Arc<model::RuleModel>>,
}

impl Segments {
    pub fn new(db: Db) -> Self {
        Self::with_clock(db, system_clock())
    }

    pub fn with_clock(db: Db, clock: Clock) -> Self {
        Self {
            db,
            clock,
            model: None,
        }
    }

    /// Reads natural language with `model` too (see [`Segments::from_text`]).
    pub fn with_model(mut self, model: Option<Arc<model::RuleModel>>) -> Self {
        self.model = model;
        self
    }

    /// Whether a model is configured.
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    pub fn now_us(&self) -> i64 {
        (self.clock)()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Saves a segment and computes its members, in one transaction.
    pub async fn create(
        &self,
        org: &OrgId,
        draft: SegmentDraft,
    ) -> Result<SegmentRecord, SegmentError> {
        let name = checked_name(&draft.name)?;
        let description = checked_description(draft.description)?;
        let (rule, text) = read_rule(&draft.rule)?;
        let mut tx = self.db.begin_segments().await?;
        let mut book = RuleBook::of(&tx.definitions(org).await?);
        if book.by_name.contains_key(&name) {
            return Err(SegmentError::NameTaken(name));
        }
        book.by_name.insert(name.clone(), rule.clone());
        check_book(&book)?;
        let segment_id = new_id("seg");
        let now = self.now_us();
        tx.insert_definition(
            org,
            &NewSegment {
                segment_id: &segment_id,
                name: &name,
                description: description.as_deref(),
                rule_text: &text,
                rule: &rule,
                now_us: now,
            },
        )
        .await?;
        recompute_in(&mut tx, org, &segment_id, &rule, &book, now, REASON_CREATED).await?;
        tx.commit().await?;
        self.get(org, &segment_id).await
    }

    /// Changes a segment; a changed rule recomputes it and every segment
    /// that names it.
    pub async fn update(
        &self,
        org: &OrgId,
        segment_id: &str,
        changes: SegmentChangeset,
    ) -> Result<SegmentRecord, SegmentError> {
        let mut tx = self.db.begin_segments().await?;
        let records = tx.definitions(org).await?;
        let current = record_in(&records, segment_id)?.clone();
        let mut book = RuleBook::of(&records);
        let name = match &changes.name {
            Some(n) => checked_name(n)?,
            None => current.name.clone(),
        };
        let description = match changes.description {
            Some(d) => checked_description(d)?,
            None => current.description.clone(),
        };
        let (rule, text) = match &changes.rule {
            Some(source) => read_rule(source)?,
            None => (current.rule.clone(), current.rule_text.clone()),
        };
        if name != current.name {
            let by = book.dependents_of(&current.name);
            if !by.is_empty() {
                return Err(SegmentError::Referenced {
                    name: current.name,
                    by: by.into_iter().collect(),
                });
            }
            if book.by_name.contains_key(&name) {
                return Err(SegmentError::NameTaken(name));
            }
        }
        book.by_name.remove(&current.name);
        book.by_name.insert(name.clone(), rule.clone());
        check_book(&book)?;
        let now = self.now_us();
        tx.update_definition(
            org,
            &NewSegment {
                segment_id,
                name: &name,
                description: description.as_deref(),
                rule_text: &text,
                rule: &rule,
                now_us: now,
            },
        )
        .await?;
        if rule != current.rule {
            recompute_in(
                &mut tx,
                org,
                segment_id,
                &rule,
                &book,
                now,
                REASON_RULE_CHANGED,
            )
            .await?;
            for dependent in book.dependents_of(&name) {
                let Some(r) = records.iter().find(|r| r.name == dependent) else {
                    continue;
                };
                recompute_in(
                    &mut tx,
                    org,
                    &r.segment_id,
                    &r.rule,
                    &book,
                    now,
                    &format!("segment \"{name}\" changed"),
                )
                .await?;
            }
        }
        tx.commit().await?;
        self.get(org, segment_id).await
    }

    /// Deletes a segment no other rule names; its members' exits are
    /// recorded in the feed.
    pub async fn delete(&self, org: &OrgId, segment_id: &str) -> Result<(), SegmentError> {
        let mut tx = self.db.begin_segments().await?;
        let records = tx.definitions(org).await?;
        let current = record_in(&records, segment_id)?;
        let by = RuleBook::of(&records).dependents_of(&current.name);
        if !by.is_empty() {
            return Err(SegmentError::Referenced {
                name: current.name.clone(),
                by: by.into_iter().collect(),
            });
        }
        tx.delete_definition(org, segment_id, self.now_us(), REASON_DELETED)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Recomputes a segment from scratch (what the live membership should
    /// already hold: any difference is recorded with reason `recompute`).
    pub async fn recompute(
        &self,
        org: &OrgId,
        segment_id: &str,
    ) -> Result<RecomputeReport, SegmentError> {
        let mut tx = self.db.begin_segments().await?;
        let records = tx.definitions(org).await?;
        let current = record_in(&records, segment_id)?;
        let book = RuleBook::of(&records);
        let now = self.now_us();
        let delta = recompute_in(
            &mut tx,
            org,
            segment_id,
            &current.rule,
            &book,
            now,
            REASON_RECOMPUTE,
        )
        .await?;
        tx.commit().await?;
        let record = self.get(org, segment_id).await?;
        Ok(RecomputeReport {
            members: record.member_count,
            entered: delta.entered.len() as i64,
            exited: delta.exited.len() as i64,
        })
    }

    pub async fn get(&self, org: &OrgId, segment_id: &str) -> Result<SegmentRecord, SegmentError> {
        self.db
            .segment(org, segment_id)
            .await?
            .ok_or(SegmentError::NotFound)
    }

    /// A segment by id, or else by exact name (for the CLI).
    pub async fn find(&self, org: &OrgId, id_or_name: &str) -> Result<SegmentRecord, SegmentError> {
        if let Some(r) = self.db.segment(org, id_or_name).await? {
            return Ok(r);
        }
        self.db
            .segments_of(org)
            .await?
            .into_iter()
            .find(|r| r.name == id_or_name)
            .ok_or(SegmentError::NotFound)
    }

    pub async fn list(
        &self,
        org: &OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SegmentRecord>, SegmentError> {
        Ok(self.db.segment_page(org, after, limit).await?)
    }

    pub async fn members(
        &self,
        org: &OrgId,
        segment_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SegmentMember>, SegmentError> {
        self.get(org, segment_id).await?;
        Ok(self
            .db
            .segment_member_page(org, segment_id, after, limit)
            .await?)
    }

    /// What a rule selects now; nothing is saved.
    pub async fn preview(&self, org: &OrgId, source: &RuleSource) -> Result<Preview, SegmentError> {
        let (rule, text) = read_rule(source)?;
        let book = RuleBook::of(&self.db.segments_of(org).await?);
        let now = self.now_us();
        let lookup = |n: &str| book.lookup(n);
        // The count and the first few, not every member's id: a preview
        // of a rule most of a million profiles match stays a count.
        let count = self.db.segment_count(org, &rule, now, &lookup).await?;
        let ids = self
            .db
            .segment_sample(org, &rule, now, &lookup, PREVIEW_SAMPLE as u32)
            .await?;
        let mut sample = Vec::new();
        for id in &ids {
            if let Some(record) = self.db.profile(org, id).await? {
                sample.push(record.profile);
            }
        }
        Ok(Preview {
            rule,
            text,
            count: i64::try_from(count).unwrap_or(i64::MAX),
            sample,
        })
    }
}

/// A reading of natural language, with the preview of the rule it gave.
#[derive(Debug, Clone)]
pub struct TextReading {
    pub preview: Preview,
    /// The words no part of the rule came from (none when the model read
    /// them: it answers for the whole text).
    pub unplaced: Vec<cohort_domain::segments::language::Span>,
    pub notes: Vec<String>,
    pub source: ReadingSource,
    /// What became of the model's answer, when it was asked.
    pub model: Option<ModelOutcome>,
}

/// Who made the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadingSource {
    /// The offline grammar.
    Grammar,
    /// The operator's model.
    Model,
}

impl ReadingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadingSource::Grammar => "grammar",
            ReadingSource::Model => "model",
        }
    }
}

/// The model's part in a reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOutcome {
    /// Whether its rule is the one returned.
    pub used: bool,
    /// Why not, when it was not: unreachable, refused, or an answer that
    /// does not parse in the rule language or names an unknown segment.
    pub reason: Option<String>,
}

impl Segments {
    /// Reads a merchant's words into a rule with the store's own
    /// vocabulary, and previews it; nothing is saved.
    ///
    /// The offline grammar reads first. The configured model is asked only
    /// when the grammar leaves words unplaced or fails, or when
    /// `ask_model` says the merchant asked for it; its answer is kept only
    /// if it parses and compiles, else it is discarded with the reason (in
    /// [`TextReading::model`]) and the grammar's reading stands.
    pub async fn from_text(
        &self,
        org: &OrgId,
        text: &str,
        ask_model: bool,
    ) -> Result<TextReading, SegmentError> {
        let vocabulary = self.db.segment_vocabulary(org).await?;
        let today = cohort_domain::time::from_micros(self.now_us()).date_naive();
        let grammar = cohort_domain::segments::language::from_text(text, &vocabulary, today);
        let wanted = ask_model
            || match &grammar {
                Ok(placed) => !placed.unplaced.is_empty(),
                Err(_) => true,
            };
        let mut outcome = None;
        if wanted {
            match &self.model {
                Some(model) => {
                    match self
                        .model_reading(org, model, text, &vocabulary, today)
                        .await?
                    {
                        Ok(preview) => {
                            return Ok(TextReading {
                                preview,
                                unplaced: Vec::new(),
                                notes: vec![format!(
                                "Read by the model {}: check that the rule says what you meant.",
                                model.model_name()
                            )],
                                source: ReadingSource::Model,
                                model: Some(ModelOutcome {
                                    used: true,
                                    reason: None,
                                }),
                            })
                        }
                        Err(reason) => {
                            tracing::info!(org = %org.as_str(), %reason, "the model's rule was discarded");
                            outcome = Some(ModelOutcome {
                                used: false,
                                reason: Some(reason),
                            });
                        }
                    }
                }
                None if ask_model => {
                    outcome = Some(ModelOutcome {
                        used: false,
                        reason: Some("no model is configured ([nl] endpoint)".into()),
                    })
                }
                None => {}
            }
        }
        let placed = grammar.map_err(|n| SegmentError::NotUnderstood {
            message: match outcome.as_ref().and_then(|o| o.reason.as_deref()) {
                Some(reason) if self.model.is_some() => {
                    format!("{}; the model's answer was discarded: {reason}", n.message)
                }
                _ => n.message,
            },
            start: n.span.start,
            end: n.span.end,
        })?;
        let preview = self.preview(org, &RuleSource::Ast(placed.rule)).await?;
        Ok(TextReading {
            preview,
            unplaced: placed.unplaced,
            notes: placed.notes,
            source: ReadingSource::Grammar,
            model: outcome,
        })
    }

    /// The model's rule for `text`, previewed; `Err(reason)` inside when
    /// it gave none that Cohort can use.
    async fn model_reading(
        &self,
        org: &OrgId,
        model: &model::RuleModel,
        text: &str,
        vocabulary: &cohort_domain::segments::language::Vocabulary,
        today: chrono::NaiveDate,
    ) -> Result<Result<Preview, String>, SegmentError> {
        let answer = match model.ask(text, vocabulary, today).await {
            Ok(answer) => answer,
            Err(failure) => return Ok(Err(failure.to_string())),
        };
        let rule = match parse(&answer) {
            Ok(rule) => rule,
            Err(e) => {
                let shown: String = answer.chars().take(200).collect();
                return Ok(Err(format!(
                    "its answer does not parse as a rule ({e}): {shown:?}"
                )));
            }
        };
        match self.preview(org, &RuleSource::Ast(rule)).await {
            Ok(preview) => Ok(Ok(preview)),
            Err(SegmentError::Store(e)) => Err(SegmentError::Store(e)),
            Err(e) => Ok(Err(format!("its rule cannot be used: {e}"))),
        }
    }
}

/// What a recompute found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecomputeReport {
    pub members: i64,
    pub entered: i64,
    pub exited: i64,
}

/// The segment `segment_id` among an organisation's records.
fn record_in<'r>(
    records: &'r [SegmentRecord],
    segment_id: &str,
) -> Result<&'r SegmentRecord, SegmentError> {
    records
        .iter()
        .find(|r| r.segment_id == segment_id)
        .ok_or(SegmentError::NotFound)
}

/// Refuses a set of segments with a cycle or a name no segment has.
fn check_book(book: &RuleBook) -> Result<(), SegmentError> {
    find_cycle(&book.by_name).map_err(|c| SegmentError::Cycle(c.names))?;
    for rule in book.by_name.values() {
        for named in cohort_domain::segments::dependencies(rule).segments {
            if !book.by_name.contains_key(&named) {
                return Err(SegmentError::UnknownSegment(named));
            }
        }
    }
    Ok(())
}

/// Full recompute of one segment inside a membership transaction: members,
/// feed, and every profile's next window check.
async fn recompute_in(
    tx: &mut SegmentTx,
    org: &OrgId,
    segment_id: &str,
    rule: &Rule,
    book: &RuleBook,
    now: i64,
    reason: &str,
) -> Result<cohort_store::segments::MembershipDelta, SegmentError> {
    let lookup = |n: &str| book.lookup(n);
    let selected = tx.select(org, rule, None, now, &lookup).await?;
    let delta = tx
        .apply(org, segment_id, None, &selected, now, reason)
        .await?;
    tx.schedule_checks(org, segment_id, rule, None, now, &lookup)
        .await?;
    Ok(delta)
}
