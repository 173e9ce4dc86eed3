//! `cohort jobs`: the operator's view of the job queue — counts, listings
//! and the dead letters, and a retry for a dead job.

use clap::Subcommand;
use cohort_domain::time::{format_rfc3339, from_micros};
use cohort_jobs::JobQueue;
use cohort_store::jobs::{JobRow, JobStatus};

use crate::commands::open;
use crate::config::Config;

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Jobs in the queue, oldest first (tab-separated: id, status, kind,
    /// queue, attempts/max, run at, last error); counts by status on stderr
    List {
        /// Only jobs of this status: queued, running or dead
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Queue a dead job again, with a fresh count of attempts
    Retry { id: i64 },
}

fn line(job: &JobRow) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}/{}\t{}\t{}",
        job.id,
        job.status.as_str(),
        job.kind,
        job.queue,
        job.attempts,
        job.max_attempts,
        format_rfc3339(from_micros(job.run_at_us)),
        job.last_error.as_deref().unwrap_or("-")
    )
}

pub async fn run(config: &Config, command: JobsCommand) -> anyhow::Result<()> {
    let db = open(config).await?;
    let queue = JobQueue::new(db.clone());
    match command {
        JobsCommand::List { status, limit } => {
            let status = status
                .as_deref()
                .map(JobStatus::parse)
                .transpose()
                .map_err(|_| anyhow::anyhow!("--status must be queued, running or dead"))?;
            let counts = db.count_jobs().await?;
            let summary: Vec<String> = counts
                .iter()
                .map(|(status, n)| format!("{n} {}", status.as_str()))
                .collect();
            eprintln!(
                "jobs: {}",
                if summary.is_empty() {
                    "none".to_owned()
                } else {
                    summary.join(", ")
                }
            );
            for job in queue.list(status, limit).await? {
                println!("{}", line(&job));
            }
        }
        JobsCommand::Retry { id } => {
            let job = queue.retry(id).await?;
            println!("{}", line(&job));
        }
    }
    Ok(())
}
