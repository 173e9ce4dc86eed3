//! `cohort serve`: open and migrate the database, bootstrap a fresh
//! install, run HTTP and the event writer, and drain both on shutdown.

use std::time::Duration;

use anyhow::Context;
use cohort_api::{ApiSettings, AppState};
use cohort_engine::destinations::Dispatcher;
use cohort_engine::woocommerce_rest::worker::RestWorker;
use cohort_store::projection::Projector;
use cohort_store::writer::{EventWriter, WriterOptions};
use cohort_store::Db;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::commands::open;
use crate::config::Config;

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
    let key = config.destinations_key()?;
    // One dispatcher: the worker, and what the admin API manages
    // destinations and sends test conversions with (same key, same policy).
    let destinations = Dispatcher::new(db.clone(), key.clone(), options)
        .context("invalid [destinations] configuration")?;
    // No-plugin WooCommerce stores: history pulls, webhook registration and
    // reconciliation (docs/WOOCOMMERCE.md), leased per store across nodes.
    let (stop_rest, rest_stop) = watch::channel(false);
    let rest_options = config.woocommerce.worker_options(config.outbound_policy());
    let rest_worker = match config.woocommerce.rest_worker_enabled {
        true => {
            let worker = RestWorker::new(db.clone(), writer.clone(), key, rest_options.clone())
                .context("cannot start the WooCommerce REST worker")?;
            Some(tokio::spawn(worker.run_until(rest_stop)))
        }
        false => None,
    };
    let state = AppState::new(db.clone(), writer, settings).with_destinations(destinations.clone());
    let app = cohort_api::router(state);
    let projector = config.projection.enabled.then(|| {
        Projector::new(db.clone()).spawn(Duration::from_millis(
            config.projection.poll_interval_ms.max(1),
        ))
    });
    let (stop_deliveries, deliveries_stop) = watch::channel(false);
    let dispatcher = config
        .destinations
        .enabled
        .then(|| tokio::spawn(destinations.clone().run_until(deliveries_stop)));

    let listener = TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let base_url = config.base_url(listener.local_addr().ok());
    bootstrap(&db, &base_url).await?;
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
    // The router (and its writer handles) is gone: the writer commits what
    // is queued and stops.
    // The REST worker stops between pages (what it stored is counted; the
    // run resumes on the next start); it holds a writer handle, so it stops
    // before the writer drains.
    if let Some(mut rest_worker) = rest_worker {
        let _ = stop_rest.send(true);
        let wait = rest_options.timeout + Duration::from_secs(1);
        if tokio::time::timeout(wait, &mut rest_worker).await.is_err() {
            rest_worker.abort();
        }
    }
    while writer_tasks.join_next().await.is_some() {}
    // A projection batch in flight rolls back; the next start resumes from
    // the committed cursor.
    if let Some(projector) = projector {
        projector.abort();
        let _ = projector.await;
    }
    // The worker claims nothing more and finishes the requests in flight
    // (each within the request timeout); one still unfinished stays claimed
    // until its lease ends, then is sent again with the same webhook-id
    // (docs/DESTINATIONS.md).
    if let Some(mut dispatcher) = dispatcher {
        let _ = stop_deliveries.send(true);
        let wait = destinations.options().timeout + Duration::from_secs(1);
        if tokio::time::timeout(wait, &mut dispatcher).await.is_err() {
            dispatcher.abort();
            let _ = dispatcher.await;
        }
    }
    db.close().await;
    tracing::info!("stopped");
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
