//! The one shape of a background loop in `cohort serve`: rounds of bounded
//! work, each in its own task so a panic is logged and the loop goes on,
//! an idle wait between rounds with nothing to do, and one stop signal
//! ([`CancellationToken`]) after which the round in flight finishes and the
//! loop returns. The supervisor bounds that wait the same way for every loop.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A boxed error of a round: the loop only logs it.
pub type RoundError = Box<dyn std::error::Error + Send + Sync>;

/// One kind of background loop.
pub trait Rounds: Clone + Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &'static str;

    /// One bounded round of work; `Ok(true)` when more is waiting now (the
    /// next round starts at once), `Ok(false)` when idle.
    fn round(&self) -> impl Future<Output = Result<bool, RoundError>> + Send;
}

/// How long a loop waits when idle, after an error and after a panic.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub idle: Duration,
    pub after_error: Duration,
    pub after_panic: Duration,
}

impl Pacing {
    pub fn idle(idle: Duration) -> Self {
        Self {
            idle,
            after_error: Duration::from_secs(1).max(idle),
            after_panic: Duration::from_secs(5).max(idle),
        }
    }
}

/// Aborts the task when dropped, so a loop that the supervisor gives up on
/// takes its round in flight with it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `worker`'s rounds until `stop` is cancelled.
pub async fn run_rounds<R: Rounds>(worker: R, pacing: Pacing, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let one = worker.clone();
        let mut task = AbortOnDrop(tokio::spawn(async move { one.round().await }));
        let wait = match (&mut task.0).await {
            Ok(Ok(true)) => continue,
            Ok(Ok(false)) => pacing.idle,
            Ok(Err(error)) => {
                tracing::warn!(%error, worker = worker.name(), "background round failed; retrying");
                pacing.after_error
            }
            Err(error) => {
                let why = if error.is_panic() {
                    panic_message(error.into_panic())
                } else {
                    "cancelled".to_owned()
                };
                tracing::error!(panic = %why, worker = worker.name(), "background round panicked; retrying");
                pacing.after_panic
            }
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(text) => (*text).to_owned(),
            Err(_) => "a non-text panic".to_owned(),
        },
    }
}

/// A random token naming this process as a lease owner.
pub(crate) fn node_token() -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}
