use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cohort_store::jobs::JobRow;
use cohort_store::{now_micros, Db};
use futures::future::BoxFuture;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::worker::panic_message;
use crate::{Job, JobError, JobsError};

/// How a runner claims and retries.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The queue this runner takes jobs from.
    pub queue: String,
    /// Idle wait between claims.
    pub poll_interval: Duration,
    /// How long a claimed job stays claimed without a heartbeat; a runner
    /// renews it every third of this while the job runs.
    pub lease: Duration,
    /// Jobs run at once by this runner.
    pub concurrency: usize,
    pub backoff: Backoff,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            queue: "default".into(),
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            concurrency: 4,
            backoff: Backoff::default(),
        }
    }
}

/// What became of the attempts a runner made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RunReport {
    pub succeeded: u64,
    /// Failed, queued again after the backoff.
    pub retried: u64,
    /// Failed for the last time (or permanently): dead-lettered.
    pub dead: u64,
    /// Their lease ended before they finished; another runner has them.
    pub lost: u64,
}

impl RunReport {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Retried => self.retried += 1,
            Outcome::Dead => self.dead += 1,
            Outcome::Lost => self.lost += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Retried,
    Dead,
    Lost,
}

type RunFn<C> = Arc<
    dyn Fn(&str, C) -> Result<BoxFuture<'static, Result<(), JobError>>, JobError> + Send + Sync,
>;

/// Runs the jobs of one queue whose kinds are registered. Jobs of kinds it
/// does not know are left to a runner that does (a node of another version),
/// never failed by it.
pub struct Runner<C> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Runner<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<C> {
    db: Db,
    context: C,
    options: RunnerOptions,
    registry: HashMap<&'static str, RunFn<C>>,
    owner: String,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl<C: Clone + Send + Sync + 'static> Runner<C> {
    pub fn new(db: Db, context: C, options: RunnerOptions) -> Self {
        let owner = format!("run_{}", crate::worker::node_token());
        Self {
            inner: Arc::new(Inner {
                db,
                context,
                options,
                registry: HashMap::new(),
                owner,
            }),
        }
    }

    /// Adds a kind this runner runs. Call before the runner is cloned.
    pub fn register<J: Job<Context = C>>(mut self) -> Self {
        let run: RunFn<C> = Arc::new(|payload: &str, context: C| {
            let job: J = serde_json::from_str(payload).map_err(|e| {
                JobError::permanent(format!("the payload is not a {}: {e}", J::KIND))
            })?;
            Ok(Box::pin(job.run(context)))
        });
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                inner.registry.insert(J::KIND, run);
            }
            None => tracing::error!(
                kind = J::KIND,
                "Runner::register on a shared runner; ignored"
            ),
        }
        self
    }

    /// The lease owner this runner claims as.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .inner
            .registry
            .keys()
            .map(|k| (*k).to_owned())
            .collect();
        kinds.sort();
        kinds
    }

    async fn claim(&self, limit: usize) -> Result<Vec<JobRow>, JobsError> {
        let kinds = self.kinds();
        if kinds.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let o = &self.inner.options;
        Ok(self
            .inner
            .db
            .claim_jobs(
                &o.queue,
                &kinds,
                &self.inner.owner,
                now_micros(),
                micros(o.lease),
                i64::try_from(limit).unwrap_or(i64::MAX),
            )
            .await?)
    }

    /// Runs one claimed job to its recorded outcome: the job runs in its own
    /// task (a panic is caught there and recorded as a failure) while its
    /// lease is renewed; a lease lost to another runner stops it.
    async fn execute(&self, job: JobRow) -> Result<Outcome, JobsError> {
        let inner = &self.inner;
        let started = match inner.registry.get(job.kind.as_str()) {
            Some(run) => run(&job.payload, inner.context.clone()),
            None => Err(JobError::retry(format!("no runner for {}", job.kind))),
        };
        let result = match started {
            Err(error) => Some(Err(error)),
            Ok(future) => self.supervise_attempt(&job, future).await?,
        };
        let Some(result) = result else {
            return Ok(Outcome::Lost);
        };
        let db = &inner.db;
        let outcome = match result {
            Ok(()) => match db.complete_job(job.id, &inner.owner).await? {
                true => Outcome::Succeeded,
                false => Outcome::Lost,
            },
            Err(error) => {
                let attempts = u32::try_from(job.attempts).unwrap_or(u32::MAX);
                let out_of_attempts = job.attempts >= job.max_attempts;
                let retry_at = (!error.permanent && !out_of_attempts).then(|| {
                    now_micros().saturating_add(micros(inner.options.backoff.delay(attempts)))
                });
                tracing::warn!(
                    job = job.id, kind = %job.kind, attempt = job.attempts, error = %error.message,
                    dead = retry_at.is_none(), "job failed"
                );
                let recorded = db
                    .fail_job(job.id, &inner.owner, &error.message, retry_at)
                    .await?;
                match (recorded, retry_at) {
                    (false, _) => Outcome::Lost,
                    (true, Some(_)) => Outcome::Retried,
                    (true, None) => Outcome::Dead,
                }
            }
        };
        Ok(outcome)
    }

    /// `None`: the lease was lost and the attempt abandoned.
    async fn supervise_attempt(
        &self,
        job: &JobRow,
        future: BoxFuture<'static, Result<(), JobError>>,
    ) -> Result<Option<Result<(), JobError>>, JobsError> {
        let inner = &self.inner;
        let mut task = tokio::spawn(future);
        let renew_every = (inner.options.lease / 3).max(Duration::from_millis(10));
        loop {
            tokio::select! {
                joined = &mut task => {
                    return Ok(Some(match joined {
                        Ok(result) => result,
                        Err(e) if e.is_panic() => {
                            Err(JobError::retry(format!("panicked: {}", panic_message(e.into_panic()))))
                        }
                        Err(_) => Err(JobError::retry("cancelled")),
                    }));
                }
                () = tokio::time::sleep(renew_every) => {
                    let until = now_micros().saturating_add(micros(inner.options.lease));
                    if !inner.db.extend_job_lease(job.id, &inner.owner, until).await? {
                        tracing::warn!(job = job.id, kind = %job.kind, "job lease lost; abandoning the attempt");
                        task.abort();
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Claims and runs due jobs until none is due (jobs scheduled later are
    /// left), for tests and `cohort jobs run`.
    pub async fn run_until_idle(&self) -> Result<RunReport, JobsError> {
        let mut report = RunReport::default();
        loop {
            let jobs = self.claim(self.inner.options.concurrency.max(1)).await?;
            if jobs.is_empty() {
                return Ok(report);
            }
            let mut running = JoinSet::new();
            for job in jobs {
                let runner = self.clone();
                running.spawn(async move { runner.execute(job).await });
            }
            while let Some(done) = running.join_next().await {
                match done {
                    Ok(outcome) => report.add(outcome?),
                    Err(e) => tracing::error!(error = %e, "job bookkeeping task failed"),
                }
            }
        }
    }

    /// Claims and runs jobs until `stop` is cancelled, then finishes the
    /// attempts in flight (the supervisor bounds how long it waits; an
    /// attempt cut short stays leased and runs again after its lease).
    pub async fn run_until(self, stop: CancellationToken) {
        let concurrency = self.inner.options.concurrency.max(1);
        let poll = self.inner.options.poll_interval;
        let mut running: JoinSet<Result<Outcome, JobsError>> = JoinSet::new();
        loop {
            if stop.is_cancelled() {
                break;
            }
            let mut claimed = 0;
            match self.claim(concurrency - running.len()).await {
                Ok(jobs) => {
                    claimed = jobs.len();
                    for job in jobs {
                        let runner = self.clone();
                        running.spawn(async move { runner.execute(job).await });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, queue = %self.inner.options.queue, "claiming jobs failed")
                }
            }
            let full = running.len() >= concurrency;
            if claimed > 0 && !full {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(poll) => {}
                Some(done) = running.join_next(), if !running.is_empty() => log_outcome(done),
            }
        }
        while let Some(done) = running.join_next().await {
            log_outcome(done);
        }
    }
}

fn log_outcome(done: Result<Result<Outcome, JobsError>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "recording a job's outcome failed; it runs again after its lease")
        }
        Err(error) => tracing::error!(%error, "job bookkeeping task failed"),
    }
}
