//! The `cohort` binary: the command line, configuration and wiring. Rules
//! live in `cohort-domain`, storage in `cohort-store`, HTTP in `cohort-api`.

mod bench;
mod bench_destinations;
mod bench_project;
mod bench_segment_latency;
mod bench_segments;
mod bench_segments_data;
mod bench_send;
mod bench_ui;
mod bench_woocommerce;
mod commands;
mod config;
mod destinations;
mod installations;
mod jobs;
mod logging;
mod mail;
mod profiles;
mod segments;
mod serve;
mod store_discounts;
mod stores;
mod supervisor;
mod suppression;
mod tail;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cohort",
    version,
    about = "Self-hosted customer data and email marketing"
)]
struct Cli {
    /// Configuration file (default: ./cohort.toml when present)
    #[arg(long, global = true, env = "COHORT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrations are applied first)
    Serve,
    /// Apply database migrations and exit
    Migrate,
    /// Print the whole commented configuration file with its defaults
    DefaultConfig,
    /// Organisations
    #[command(subcommand)]
    Org(commands::OrgCommand),
    /// Sources and their write keys
    #[command(subcommand)]
    Source(commands::SourceCommand),
    /// People who sign in
    #[command(subcommand)]
    User(commands::UserCommand),
    /// API tokens for the admin JSON API
    #[command(subcommand)]
    Token(commands::TokenCommand),
    /// Read the event log
    #[command(subcommand)]
    Events(tail::EventsCommand),
    /// Profiles: show, export, erase
    #[command(subcommand)]
    Profile(profiles::ProfileCommand),
    /// Segments: create, list, show, members, preview, recompute
    #[command(subcommand)]
    Segment(segments::SegmentCommand),
    /// Stores connected through the WordPress plugin
    #[command(subcommand)]
    Installations(installations::InstallationsCommand),
    /// A connected WooCommerce store: ask for a sync, follow its sync runs
    #[command(subcommand)]
    Store(stores::StoreCommand),
    /// Destinations (signed webhooks, Everflow): manage, delivery log, replay, test
    #[command(subcommand)]
    Destination(destinations::DestinationCommand),
    /// The background job queue: list, dead letters, retry
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Mail: a test message, the outbox, a message's attempts, a dead letter's retry
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// The suppression list: list, add, remove (with a reason)
    #[command(subcommand)]
    Suppression(suppression::SuppressionCommand),
    /// Rebuild profiles, identities, orders, products and tags from the event log
    Reproject,
    /// Measure hot paths
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::DefaultConfig = cli.command {
        print!("{}", config::DEFAULT_CONFIG);
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            logging::init(&config.log)?;
            serve::serve(config).await
        }
        Command::Migrate => {
            let db = commands::open(&config).await?;
            println!("migrations applied ({})", db.backend().as_str());
            Ok(())
        }
        Command::DefaultConfig => Ok(()),
        Command::Org(c) => commands::org(&config, c).await,
        Command::Source(c) => commands::source(&config, c).await,
        Command::User(c) => commands::user(&config, c).await,
        Command::Token(c) => commands::token(&config, c).await,
        Command::Events(c) => tail::run(&config, c).await,
        Command::Profile(c) => profiles::profile(&config, c).await,
        Command::Segment(c) => segments::run(&config, c).await,
        Command::Installations(c) => installations::run(&config, c).await,
        Command::Store(c) => stores::run(&config, c).await,
        Command::Destination(c) => destinations::run(&config, c).await,
        Command::Jobs(c) => jobs::run(&config, c).await,
        Command::Mail(c) => mail::run(&config, c).await,
        Command::Suppression(c) => suppression::run(&config, c).await,
        Command::Reproject => profiles::reproject(&config).await,
        Command::Bench(c) => bench::run(&config, c).await,
    }
}
