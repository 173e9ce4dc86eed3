//! The job queue and the log follower against real databases: every case on
//! SQLite and PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cohort_domain::ids::SourceId;
use cohort_jobs::backoff::Backoff;
use cohort_jobs::follower::{LogFollower, StartAt};
use cohort_jobs::{Job, JobError, JobQueue, RunReport, Runner, RunnerOptions};
use cohort_store::events::NewEvent;
use cohort_store::jobs::JobStatus;
use cohort_store::{now_micros, Db};
use cohort_testkit::{all_backends, seed};
use serde::{Deserialize, Serialize};

/// What the test jobs saw: runs per job name.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, u32>>>);

impl Seen {
    fn bump(&self, name: &str) -> u32 {
        let mut map = self.0.lock().unwrap();
        let n = map.entry(name.to_owned()).or_default();
        *n += 1;
        *n
    }
    fn runs(&self, name: &str) -> u32 {
        self.0.lock().unwrap().get(name).copied().unwrap_or(0)
    }
    fn total(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }
    fn max(&self) -> u32 {
        self.0.lock().unwrap().values().copied().max().unwrap_or(0)
    }
}

/// Succeeds after failing `fail_first` times; panics instead when `panic`.
#[derive(Serialize, Deserialize)]
struct Flaky {
    name: String,
    fail_first: u32,
    #[serde(default)]
    panic: bool,
    #[serde(default)]
    permanent: bool,
    #[serde(default)]
    key: Option<String>,
}

impl Flaky {
    fn ok(name: &str) -> Self {
        Self {
            name: name.into(),
            fail_first: 0,
            panic: false,
            permanent: false,
            key: None,
        }
    }
}

impl Job for Flaky {
    const KIND: &'static str = "test.flaky";
    const MAX_ATTEMPTS: u32 = 3;
    type Context = Seen;

    fn dedupe_key(&self) -> Option<String> {
        self.key.clone()
    }

    async fn run(self, seen: Seen) -> Result<(), JobError> {
        let attempt = seen.bump(&self.name);
        if self.panic {
            panic!("boom in {}", self.name);
        }
        if self.permanent {
            return Err(JobError::permanent("no such thing"));
        }
        if attempt <= self.fail_first {
            return Err(JobError::retry(format!("attempt {attempt} failed")));
        }
        Ok(())
    }
}

/// A kind no runner of these tests registers.
#[derive(Serialize, Deserialize)]
struct Unknown;

impl Job for Unknown {
    const KIND: &'static str = "test.unknown";
    type Context = Seen;
    async fn run(self, _: Seen) -> Result<(), JobError> {
        Ok(())
    }
}

fn fast() -> RunnerOptions {
    RunnerOptions {
        poll_interval: Duration::from_millis(10),
        lease: Duration::from_secs(30),
        concurrency: 4,
        // No wait between attempts, so run_until_idle sees every retry.
        backoff: Backoff {
            base: Duration::ZERO,
            max: Duration::ZERO,
        },
        ..RunnerOptions::default()
    }
}

fn runner(db: &Db, seen: &Seen) -> Runner<Seen> {
    Runner::new(db.clone(), seen.clone(), fast()).register::<Flaky>()
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_exists() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let seen = Seen::default();
        let mut tx = t.db.begin_write().await.unwrap();
        assert!(queue
            .enqueue_in(&mut tx, &Flaky::ok("rolled"))
            .await
            .unwrap());
        tx.rollback().await.unwrap();
        let mut tx = t.db.begin_write().await.unwrap();
        assert!(queue.enqueue_in(&mut tx, &Flaky::ok("kept")).await.unwrap());
        tx.commit().await.unwrap();

        let report = runner(&t.db, &seen).run_until_idle().await.unwrap();
        assert_eq!(report.succeeded, 1, "{:?}", t.backend());
        assert_eq!((seen.runs("rolled"), seen.runs("kept")), (0, 1));
        assert!(
            queue.list(None, 10).await.unwrap().is_empty(),
            "a finished job is deleted"
        );
    }
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_and_an_operator_can_retry() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let seen = Seen::default();
        queue
            .enqueue(&Flaky {
                fail_first: 2,
                ..Flaky::ok("twice")
            })
            .await
            .unwrap();
        queue
            .enqueue(&Flaky {
                fail_first: 10,
                ..Flaky::ok("never")
            })
            .await
            .unwrap();
        let report = runner(&t.db, &seen).run_until_idle().await.unwrap();
        assert_eq!(
            report,
            RunReport {
                succeeded: 1,
                retried: 4,
                dead: 1,
                lost: 0
            },
            "{:?}",
            t.backend()
        );
        assert_eq!((seen.runs("twice"), seen.runs("never")), (3, 3));
        let dead = queue.dead(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].status, JobStatus::Dead);
        assert_eq!(dead[0].attempts, 3);
        assert_eq!(dead[0].last_error.as_deref(), Some("attempt 3 failed"));
        assert!(dead[0].payload.contains("never"));

        // An operator retries it: three fresh attempts.
        let retried = queue.retry(dead[0].id).await.unwrap();
        assert_eq!((retried.status, retried.attempts), (JobStatus::Queued, 0));
        let report = runner(&t.db, &seen).run_until_idle().await.unwrap();
        assert_eq!((report.retried, report.dead), (2, 1));
        assert_eq!(seen.runs("never"), 6);
        // Retrying what is not dead says so and changes nothing.
        let err = queue.retry(dead[0].id + 1000).await.unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }
}

#[tokio::test]
async fn the_backoff_schedules_the_retry_later() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let seen = Seen::default();
        queue
            .enqueue(&Flaky {
                fail_first: 1,
                ..Flaky::ok("later")
            })
            .await
            .unwrap();
        let options = RunnerOptions {
            backoff: Backoff {
                base: Duration::from_secs(600),
                max: Duration::from_secs(600),
            },
            ..fast()
        };
        let before = now_micros();
        let report = Runner::new(t.db.clone(), seen.clone(), options)
            .register::<Flaky>()
            .run_until_idle()
            .await
            .unwrap();
        assert_eq!((report.retried, report.succeeded), (1, 0));
        let jobs = queue.list(Some(JobStatus::Queued), 10).await.unwrap();
        assert_eq!(jobs.len(), 1);
        let delay = jobs[0].run_at_us - before;
        // 600 s ± 20 % jitter.
        assert!((480_000_000..=721_000_000).contains(&delay), "{delay}");
        assert_eq!(jobs[0].last_error.as_deref(), Some("attempt 1 failed"));
    }
}

#[tokio::test]
async fn a_panicking_job_is_recorded_not_lost_and_the_runner_goes_on() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let seen = Seen::default();
        queue
            .enqueue(&Flaky {
                panic: true,
                ..Flaky::ok("panics")
            })
            .await
            .unwrap();
        queue.enqueue(&Flaky::ok("fine")).await.unwrap();
        let report = runner(&t.db, &seen).run_until_idle().await.unwrap();
        assert_eq!((report.succeeded, report.dead), (1, 1), "{:?}", t.backend());
        let dead = queue.dead(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            dead[0].last_error.as_deref(),
            Some("panicked: boom in panics")
        );
        assert_eq!(seen.runs("panics"), 3);
    }
}

#[tokio::test]
async fn a_permanent_failure_is_dead_at_once_and_a_bad_payload_too() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let seen = Seen::default();
        queue
            .enqueue(&Flaky {
                permanent: true,
                ..Flaky::ok("perm")
            })
            .await
            .unwrap();
        t.db.enqueue_job(&cohort_store::jobs::NewJob {
            queue: "default".into(),
            kind: Flaky::KIND.into(),
            payload: r#"{"nam":"typo"}"#.into(),
            dedupe_key: None,
            priority: 0,
            max_attempts: 5,
            run_at_us: now_micros(),
        })
        .await
        .unwrap();
        let report = runner(&t.db, &seen).run_until_idle().await.unwrap();
        assert_eq!((report.dead, report.retried), (2, 0));
        assert_eq!(seen.total(), 1, "the bad payload never ran");
        let dead = queue.dead(10).await.unwrap();
        assert!(dead.iter().any(|j| j
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("payload is not a test.flaky")));
    }
}

#[tokio::test]
async fn a_queued_job_with_a_dedupe_key_is_enqueued_once() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let keyed = |name: &str| Flaky {
            key: Some("store_1".into()),
            ..Flaky::ok(name)
        };
        assert!(queue.enqueue(&keyed("first")).await.unwrap());
        assert!(!queue.enqueue(&keyed("second")).await.unwrap());
        let seen = Seen::default();
        runner(&t.db, &seen).run_until_idle().await.unwrap();
        assert_eq!((seen.runs("first"), seen.runs("second")), (1, 0));
        // Once it ran, the same key may be queued again.
        assert!(queue.enqueue(&keyed("third")).await.unwrap());
    }
}

#[tokio::test]
async fn jobs_of_unknown_kinds_are_left_for_a_runner_that_knows_them() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        queue.enqueue(&Unknown).await.unwrap();
        let report = runner(&t.db, &Seen::default())
            .run_until_idle()
            .await
            .unwrap();
        assert_eq!(report, RunReport::default());
        let left = queue.list(None, 10).await.unwrap();
        assert_eq!(
            (left.len(), left[0].status, left[0].attempts),
            (1, JobStatus::Queued, 0)
        );
    }
}

#[tokio::test]
async fn a_job_whose_worker_died_runs_again_after_its_lease() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let seen = Seen::default();
        queue.enqueue(&Flaky::ok("orphan")).await.unwrap();
        let kinds = vec![Flaky::KIND.to_owned()];
        // A worker claims it with a 1 ms lease, then "dies".
        let claimed =
            t.db.claim_jobs("default", &kinds, "dead-worker", now_micros(), 1_000, 10)
                .await
                .unwrap();
        assert_eq!(claimed.len(), 1);
        // While the lease holds, nobody else gets it.
        let none =
            t.db.claim_jobs(
                "default",
                &kinds,
                "other",
                now_micros() - 1_000_000,
                1_000,
                10,
            )
            .await
            .unwrap();
        assert!(none.is_empty());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let report = runner(&t.db, &seen).run_until_idle().await.unwrap();
        assert_eq!(report.succeeded, 1, "{:?}", t.backend());
        assert_eq!(seen.runs("orphan"), 1);
        // The dead worker's late answer changes nothing.
        assert!(!t
            .db
            .complete_job(claimed[0].id, "dead-worker")
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn two_runners_on_one_database_run_every_job_exactly_once() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let seen = Seen::default();
        for i in 0..120 {
            queue.enqueue(&Flaky::ok(&format!("job{i}"))).await.unwrap();
        }
        let (a, b) = (runner(&t.db, &seen), runner(&t.db, &seen));
        let (ra, rb) = tokio::join!(a.run_until_idle(), b.run_until_idle());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.succeeded + rb.succeeded, 120, "{:?}", t.backend());
        assert_eq!((seen.total(), seen.max()), (120, 1));
    }
}

#[tokio::test]
async fn run_until_stops_on_cancel_after_running_what_is_due() {
    for t in all_backends().await {
        let queue = JobQueue::new(t.db.clone());
        let seen = Seen::default();
        for i in 0..5 {
            queue.enqueue(&Flaky::ok(&format!("bg{i}"))).await.unwrap();
        }
        let stop = cohort_jobs::CancellationToken::new();
        let task = tokio::spawn(runner(&t.db, &seen).run_until(stop.clone()));
        for _ in 0..500 {
            if seen.total() == 5 && queue.list(None, 10).await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the runner stops when cancelled")
            .unwrap();
        assert_eq!(seen.total(), 5);
        assert!(queue.list(None, 10).await.unwrap().is_empty());
    }
}

async fn append(db: &Db, org: &cohort_domain::ids::OrgId, source: &SourceId, n: usize, tag: &str) {
    let body = format!(
        r#"{{"batch":[{}]}}"#,
        (0..n)
            .map(|i| format!(
                r#"{{"type":"track","event":"E","userId":"u","messageId":"{tag}{i}"}}"#
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let parsed = cohort_domain::collect::normalize_request(
        body.as_bytes(),
        cohort_domain::collect::Envelope::Batch,
        chrono::Utc::now(),
        &cohort_domain::collect::Limits::default(),
    )
    .unwrap();
    let events: Vec<NewEvent> = parsed
        .messages
        .iter()
        .map(|m| NewEvent::from_message(org, source, m))
        .collect();
    db.append_events(&events).await.unwrap();
}

#[tokio::test]
async fn followers_of_one_name_see_every_event_once_and_a_dropped_batch_is_read_again() {
    for t in all_backends().await {
        let s = seed(&t.db, "Org").await;
        append(&t.db, &s.org, &s.source.id, 30, "old").await;
        let late = LogFollower::open(t.db.clone(), "test.late", StartAt::End, 7)
            .await
            .unwrap();
        let all = LogFollower::open(t.db.clone(), "test.all", StartAt::Beginning, 7)
            .await
            .unwrap();
        append(&t.db, &s.org, &s.source.id, 20, "new").await;

        // A batch dropped without commit is read again.
        let first = all.next_batch().await.unwrap().unwrap();
        let first_seq = first.events()[0].event.seq;
        drop(first);
        let again = all.next_batch().await.unwrap().unwrap();
        assert_eq!(again.events()[0].event.seq, first_seq);
        drop(again);

        // Two followers of one name (two nodes) share the work.
        let twin = all.clone();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let consume = |f: LogFollower, seen: Arc<Mutex<Vec<String>>>| async move {
            while let Some(batch) = f.next_batch().await.unwrap() {
                let ids: Vec<String> = batch
                    .events()
                    .iter()
                    .map(|e| e.event.message_id.clone())
                    .collect();
                seen.lock().unwrap().extend(ids);
                batch.commit().await.unwrap();
            }
        };
        tokio::join!(
            consume(all.clone(), seen.clone()),
            consume(twin, seen.clone())
        );
        let mut ids = seen.lock().unwrap().clone();
        assert_eq!(ids.len(), 50, "{:?}", t.backend());
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 50, "no event twice");
        assert!(all.next_batch().await.unwrap().is_none(), "idle");

        let mut late_ids = Vec::new();
        while let Some(batch) = late.next_batch().await.unwrap() {
            late_ids.extend(batch.events().iter().map(|e| e.event.message_id.clone()));
            batch.commit().await.unwrap();
        }
        assert_eq!(late_ids.len(), 20);
        assert!(late_ids.iter().all(|id| id.starts_with("new")));
        assert_eq!(
            late.position().await.unwrap(),
            all.position().await.unwrap()
        );
    }
}
