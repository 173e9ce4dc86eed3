//! The one supervisor of `cohort serve`'s background loops: every loop gets
//! the same stop signal (a [`CancellationToken`]) and the same drain — on
//! SIGTERM the token is cancelled, each loop finishes its round in flight,
//! and whatever has not returned when the grace period ends is aborted.
//! Work cut short that way is never lost: it is held by a lease or a cursor
//! in the database and taken up again (by this node's next start or by
//! another node).

use std::future::Future;
use std::time::Duration;

use cohort_jobs::CancellationToken;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Supervisor {
    stop: CancellationToken,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Supervisor {
    pub fn new() -> Self {
        Self {
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Starts a loop that returns once the token it is given is cancelled.
    pub fn spawn<F>(&mut self, name: &'static str, run: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tracing::debug!(worker = name, "starting");
        self.tasks
            .push((name, tokio::spawn(run(self.stop.clone()))));
    }

    /// The stop signal as a `watch` receiver, for loops written against one.
    pub fn watch(stop: &CancellationToken) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            let _ = tx.send(true);
        });
        rx
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(name, _)| *name).collect()
    }

    /// Cancels every loop and waits for them together up to `grace`; the
    /// ones still running then are aborted.
    pub async fn drain(self, grace: Duration) {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut task) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => tracing::debug!(worker = name, "stopped"),
                Ok(Err(error)) => tracing::error!(worker = name, %error, "worker ended abnormally"),
                Err(_) => {
                    tracing::warn!(worker = name, "still busy after the grace period; aborted (its work resumes from the database)");
                    task.abort();
                    let _ = task.await;
                }
            }
        }
    }
}
