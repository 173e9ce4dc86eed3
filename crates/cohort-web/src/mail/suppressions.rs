//! The suppression list: search by address part and reason, add an
//! address (by hand, or marked as imported from another system), lift an
//! address's suppressions with the reason why (kept in the log).

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Form;
use cohort_domain::accounts::normalise_email;
use cohort_domain::suppression::SuppressionReason;
use cohort_store::suppressions::{Suppression, SuppressionQuery};
use serde::{Deserialize, Serialize};

use super::{filled, ShownError};
use crate::auth::urlencode;
use crate::{html, redirect, templates, Member, UiError, UiResult, WebState};

/// Rows on a page of the list.
const PAGE: u32 = 100;
/// Longest note or lifting reason kept (as the API).
const NOTE_MAX_CHARS: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    q: Option<String>,
    reason: Option<String>,
    /// `{email}\n{reason}` of the last row of the previous page.
    after: Option<String>,
    done: Option<String>,
}

#[derive(Debug, Serialize)]
struct Row {
    email: String,
    reason: &'static str,
    detail: Option<String>,
    source: String,
    created_at: i64,
}

impl From<Suppression> for Row {
    fn from(s: Suppression) -> Self {
        Self {
            email: s.email,
            reason: s.reason.as_str(),
            detail: s.detail,
            source: s.source,
            created_at: s.created_at_us,
        }
    }
}

/// What the add form shows again after an error.
#[derive(Debug, Default, Serialize)]
struct AddValues {
    email: String,
    reason: String,
    detail: String,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "added" => "Suppressed: no marketing mail goes to this address from now on.",
        "already" => {
            "This address was already suppressed for that reason; the first record stands."
        }
        "lifted" => "Lifted: the address may be mailed again. The reason is kept in the log.",
        _ => return None,
    })
}

fn addable() -> Vec<&'static str> {
    SuppressionReason::ALL
        .iter()
        .filter(|r| r.addable_by_merchant())
        .map(|r| r.as_str())
        .collect()
}

struct Shown {
    status: StatusCode,
    add: AddValues,
    error: Option<ShownError>,
    notice: Option<&'static str>,
}

async fn page(state: &WebState, member: &Member, params: &ListParams, shown: Shown) -> UiResult {
    let search = filled(&params.q);
    let reason = match filled(&params.reason) {
        None => None,
        Some(r) => Some(SuppressionReason::parse(r).ok_or_else(UiError::bad_form)?),
    };
    let after = params.after.as_deref().and_then(|a| a.split_once('\n'));
    let rows = state
        .db()
        .suppressions_page(
            &member.org.id,
            &SuppressionQuery {
                search,
                reason,
                after,
                limit: PAGE,
            },
        )
        .await?;
    let next = (rows.len() == PAGE as usize)
        .then(|| {
            rows.last().map(|s| {
                let mut query = format!(
                    "?after={}",
                    urlencode(&format!("{}\n{}", s.email, s.reason.as_str()))
                );
                if let Some(q) = search {
                    query.push_str(&format!("&q={}", urlencode(q)));
                }
                if let Some(r) = reason {
                    query.push_str(&format!("&reason={}", r.as_str()));
                }
                query
            })
        })
        .flatten();
    let rows: Vec<Row> = rows.into_iter().map(Row::from).collect();
    let body = templates::render(
        "mail_suppressions.html",
        &member.layout("mail", "Suppressions"),
        minijinja::context! {
            tab => "suppressions",
            rows,
            next,
            q => search,
            reason => reason.map(SuppressionReason::as_str),
            reasons => SuppressionReason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            addable => addable(),
            add => shown.add,
            field_error => shown.error,
            notice => shown.notice,
        },
    )?;
    Ok(html(shown.status, body))
}

/// The list, filtered.
pub(crate) async fn list_suppressions(
    State(state): State<WebState>,
    member: Member,
    Query(params): Query<ListParams>,
) -> UiResult {
    let shown = Shown {
        status: StatusCode::OK,
        add: AddValues {
            reason: "manual".into(),
            ..Default::default()
        },
        error: None,
        notice: notice(params.done.as_deref()),
    };
    page(&state, &member, &params, shown).await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SuppressionForm {
    #[serde(default)]
    csrf: String,
    /// `add` or `lift`
    action: Option<String>,
    email: Option<String>,
    reason: Option<String>,
    detail: Option<String>,
    /// Why an address is lifted.
    why: Option<String>,
}

fn note(field: &str, value: &Option<String>) -> Result<Option<String>, ShownError> {
    match filled(value) {
        Some(n) if n.chars().count() > NOTE_MAX_CHARS => Err(ShownError::new(
            field,
            format!("{field}: at most {NOTE_MAX_CHARS} characters"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// `action=add` suppresses an address; `action=lift` lifts every
/// suppression of one, with `why`.
pub(crate) async fn suppression_action(
    State(state): State<WebState>,
    member: Member,
    form: Result<Form<SuppressionForm>, FormRejection>,
) -> UiResult {
    let Ok(Form(f)) = form else {
        return Err(UiError::bad_form());
    };
    member.check_change(&f.csrf)?;
    let org = &member.org.id;
    let db = state.db();
    let email = normalise_email(f.email.as_deref().unwrap_or_default())
        .map_err(|e| ShownError::new("email", format!("email: {e}")));
    let listed = |email: &str, done: &str| {
        redirect(&member.path(&format!(
            "/mail/suppressions?q={}&done={done}",
            urlencode(email)
        )))
    };
    match f.action.as_deref() {
        Some("add") => {
            let checked = (|| {
                let email = email?;
                let reason = match filled(&f.reason) {
                    None => SuppressionReason::Manual,
                    Some(r) => SuppressionReason::parse(r)
                        .filter(|r| r.addable_by_merchant())
                        .ok_or_else(|| {
                            ShownError::new(
                                "reason",
                                format!("reason: one of {}", addable().join(", ")),
                            )
                        })?,
                };
                Ok::<_, ShownError>((email, reason, note("detail", &f.detail)?))
            })();
            match checked {
                Ok((email, reason, detail)) => {
                    let created = db
                        .suppress(org, &email, reason, detail.as_deref(), "admin_ui")
                        .await?;
                    tracing::info!(
                        reason = reason.as_str(),
                        "address suppressed from the admin UI"
                    );
                    Ok(listed(&email, if created { "added" } else { "already" }))
                }
                Err(error) => {
                    let shown = Shown {
                        status: StatusCode::BAD_REQUEST,
                        add: AddValues {
                            email: f.email.clone().unwrap_or_default(),
                            reason: f.reason.clone().unwrap_or_default(),
                            detail: f.detail.clone().unwrap_or_default(),
                        },
                        error: Some(error),
                        notice: None,
                    };
                    page(&state, &member, &ListParams::default(), shown).await
                }
            }
        }
        Some("lift") => {
            let email = email.map_err(|_| UiError::bad_form())?;
            let why = match note("why", &f.why) {
                Ok(Some(why)) => why,
                Ok(None) | Err(_) => {
                    let error = ShownError::new(
                        "why",
                        "why: say why the address may be mailed again (at most 500 characters)",
                    );
                    let params = ListParams {
                        q: Some(email.clone()),
                        ..Default::default()
                    };
                    let shown = Shown {
                        status: StatusCode::BAD_REQUEST,
                        add: AddValues {
                            reason: "manual".into(),
                            ..Default::default()
                        },
                        error: Some(error),
                        notice: None,
                    };
                    return page(&state, &member, &params, shown).await;
                }
            };
            if db.unsuppress(org, &email, &why, "admin_ui").await? == 0 {
                return Err(UiError::not_found());
            }
            tracing::info!("suppression lifted from the admin UI");
            Ok(listed(&email, "lifted"))
        }
        _ => Err(UiError::bad_form()),
    }
}
