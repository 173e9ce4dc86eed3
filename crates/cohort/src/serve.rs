//! `cohort serve`: open and migrate the database, bootstrap a fresh
//! install, run HTTP and/or the background workers (`[server] roles`),
//! and drain them all the same way on shutdown.

use std::time::Duration;

use anyhow::Context;
use cohort_api::{ApiSettings, AppState};
use cohort_engine::destinations::Dispatcher;
use cohort_engine::mail::{Mail, MailRounds};
use cohort_engine::projection::ProjectionRounds;
use cohort_engine::segments::defaults::DefaultsRounds;
use cohort_engine::segments::membership::MembershipRounds;
use cohort_engine::segments::rfm::RfmRounds;
use cohort_engine::segments::Segments;
use cohort_engine::woocommerce_rest::worker::RestWorker;
use cohort_store::destinations::SecretsKey;
use cohort_store::projection::Projector;
use cohort_store::writer::{EventWriter, WriterOptions};
use cohort_store::Db;
use cohort_web::{WebSettings, WebState};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::commands::open;
use crate::config::{Config, Role};
use crate::supervisor::Supervisor;
use cohort_jobs::worker::{run_rounds, Pacing};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let db = open(&config).await?;
    let (writer, mut writer_tasks) = EventWriter::start(
        db.clone(),
        WriterOptions {
            queue_capacity: config.collect.queue_capacity,
            max_group_events: config.collect.max_group_events,
            tasks: config.collect.writer_tasks,
        },
    );
    let settings = ApiSettings {
        public_url: Some(config.server.public_url.clone()).filter(|u| !u.is_empty()),
        limits: config.limits(),
        rate_limit_per_source: config.collect.rate_limit_per_source,
        outbound: config.outbound_policy(),
    };
    let options = crate::destinations::options(&config);
    // One dispatcher: the worker, and what the admin API and the pages
    // manage destinations and send test conversions with (same key, same
    // policy).
    let key = config.destinations_key()?;
    let destinations = Dispatcher::new(db.clone(), key.clone(), options)
        .context("invalid [destinations] configuration")?;
    // One mail service: the outbox worker, and what the admin API sends,
    // lists and manages providers with (same key, same transport).
    let mail = Mail::new(db.clone(), key.clone(), config.mail.settings()?)
        .context("invalid [mail] configuration")?;
    let rule_model = config.nl.rule_model()?;
    if let Some(model) = &rule_model {
        tracing::info!(
            model = model.model_name(),
            "natural-language segments also ask a model"
        );
    }
    let pages = cohort_web::router(
        WebState::with_rule_model(
            db.clone(),
            WebSettings {
                public_url: settings.public_url.clone(),
            },
            Some(destinations.clone()),
            rule_model.clone(),
        )
        .with_mail(mail.clone()),
    );
    let state = AppState::new(db.clone(), writer.clone(), settings)
        .with_destinations(destinations.clone())
        .with_rule_model(rule_model)
        .with_mail(mail.clone());

    let http = config.server.has(Role::Http);
    let workers = config.server.has(Role::Workers);
    let mut supervisor = Supervisor::new();
    if workers {
        start_workers(
            &config,
            &mut supervisor,
            &db,
            writer,
            key,
            &destinations,
            &mail,
        )?;
    }
    start_inbound(&config, &mut supervisor, &mail).await?;
    tracing::info!(http, workers = ?supervisor.names(), "roles");

    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    if http {
        serve_http(&config, &db, cohort_api::router_with_pages(state, pages)).await?;
    } else {
        // The state and the pages are not needed without HTTP (they hold a
        // writer handle, which must go before the writer drains).
        drop((state, pages));
        println!(
            "Cohort {} is running workers only ({}): {}",
            env!("CARGO_PKG_VERSION"),
            db.backend().as_str(),
            supervisor.names().join(", ")
        );
        shutdown_signal().await;
        tracing::info!("shutting down");
    }
    // The workers stop before the writer drains: the WooCommerce pull holds
    // a writer handle. A projection batch or a delivery cut short at the
    // grace period stays behind its cursor or lease and is done again.
    supervisor.drain(grace).await;
    // The router (and its writer handles) is gone: the writer commits what
    // is queued and stops.
    while writer_tasks.join_next().await.is_some() {}
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The background loops of a `workers` node, each under the supervisor.
fn start_workers(
    config: &Config,
    supervisor: &mut Supervisor,
    db: &Db,
    writer: EventWriter,
    key: SecretsKey,
    destinations: &Dispatcher,
    mail: &Mail,
) -> anyhow::Result<()> {
    if config.projection.enabled {
        let rounds = ProjectionRounds(Projector::new(db.clone()));
        let pacing = Pacing::idle(Duration::from_millis(
            config.projection.poll_interval_ms.max(1),
        ));
        supervisor.spawn("projection", move |stop| run_rounds(rounds, pacing, stop));
        // Live segment membership follows what the projection marks.
        let membership = MembershipRounds::new(&Segments::new(db.clone()));
        supervisor.spawn("segment-membership", move |stop| {
            run_rounds(membership, pacing, stop)
        });
        // RFM scores, recomputed daily per organisation with purchases.
        let rfm = RfmRounds::new(&Segments::new(db.clone()));
        supervisor.spawn("rfm", move |stop| {
            run_rounds(rfm, Pacing::idle(Duration::from_secs(60)), stop)
        });
        // Ready-made segments for stores that connected.
        let defaults = DefaultsRounds::new(&Segments::new(db.clone()));
        supervisor.spawn("ready-made-segments", move |stop| {
            run_rounds(defaults, Pacing::idle(Duration::from_secs(30)), stop)
        });
    }
    // The outbox: every queued message sent, retried or dead-lettered, by
    // lease across nodes (docs/MAIL.md).
    if config.mail.worker_enabled {
        let rounds = MailRounds::new(mail.clone());
        supervisor.spawn("mail-outbox", move |stop| {
            run_rounds(rounds, Pacing::idle(Duration::from_millis(500)), stop)
        });
    }
    if config.destinations.enabled {
        let dispatcher = destinations.clone();
        supervisor.spawn("destinations", move |stop| {
            dispatcher.run_until(Supervisor::watch(&stop))
        });
    }
    // No-plugin WooCommerce stores: history pulls, webhook registration and
    // reconciliation (docs/WOOCOMMERCE.md), leased per store across nodes.
    if config.woocommerce.rest_worker_enabled {
        let options = config.woocommerce.worker_options(config.outbound_policy());
        let worker = RestWorker::new(db.clone(), writer, key, options)
            .context("cannot start the WooCommerce REST worker")?;
        supervisor.spawn("woocommerce-rest", move |stop| {
            worker.run_until(Supervisor::watch(&stop))
        });
    }
    Ok(())
}

/// The inbound SMTP listener for bounces and complaints, when `[mail.inbound]
/// listen` is set; bound before anything else starts, so a port taken is a
/// clear error at start.
async fn start_inbound(
    config: &Config,
    supervisor: &mut Supervisor,
    mail: &Mail,
) -> anyhow::Result<()> {
    let listen = config.mail.inbound.listen.trim();
    if listen.is_empty() {
        return Ok(());
    }
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ([mail.inbound] listen)"))?;
    let bound = listener.local_addr()?;
    println!("Bounce and complaint listener (SMTP): {bound}");
    tracing::info!(%bound, "inbound SMTP listening");
    let mail = mail.clone();
    let max_bytes = config.mail.inbound.max_message_kb.max(64) * 1024;
    supervisor.spawn("mail-inbound", move |stop| async move {
        if let Err(error) = mail
            .serve_inbound(listener, max_bytes, stop.cancelled_owned())
            .await
        {
            tracing::error!(%error, "the inbound SMTP listener stopped");
        }
    });
    Ok(())
}

/// Serves HTTP until SIGTERM/Ctrl-C, then finishes in-flight requests for
/// at most the grace period.
async fn serve_http(config: &Config, db: &Db, app: axum::Router) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let base_url = config.base_url(listener.local_addr().ok());
    bootstrap(db, &base_url).await?;
    println!(
        "Cohort {} is listening on {base_url} ({})",
        env!("CARGO_PKG_VERSION"),
        db.backend().as_str()
    );
    println!("Admin UI: {base_url}/app");
    tracing::info!(url = %base_url, backend = db.backend().as_str(), "listening");

    let (stopping_tx, mut stopping) = watch::channel(false);
    // Connect info: the admin UI counts failed sign-ins per client address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping_tx.send(true);
    });
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    let deadline = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("HTTP server failed")?,
        () = deadline => tracing::warn!("grace period over; closing the remaining connections"),
    }
    Ok(())
}

/// On an empty database, creates the default organisation and source; while
/// no one can sign in, prints a fresh one-time link to create the first admin.
async fn bootstrap(db: &Db, base_url: &str) -> anyhow::Result<()> {
    let orgs = db.list_organisations().await?;
    let (org, fresh) = match orgs.into_iter().next() {
        Some(org) => (org, false),
        None => (db.create_organisation("Default").await?, true),
    };
    if fresh {
        let source = db.create_source(&org.id, "Default source").await?;
        println!(
            "Created organisation \"{}\" ({}) and source \"{}\" ({}).",
            org.name, org.id, source.name, source.id
        );
        println!(
            "Write key of source \"{}\": {}",
            source.name, source.write_key
        );
        println!(
            "Send a first event: curl -u {}: -H 'Content-Type: application/json' -d '{{\"userId\":\"user_1\",\"event\":\"Hello\"}}' {base_url}/v1/track",
            source.write_key
        );
    }
    if db.count_members(&org.id).await? == 0 {
        let link = db.create_setup_link(&org.id).await?;
        println!(
            "Create the first admin account (one-time link): {base_url}/setup/{}",
            link.reveal()
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
