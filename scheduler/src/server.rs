//! Running the scheduler's gRPC server: bind, serve, shut down gracefully.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use multiscanner_proto::pb::{
    self, reports_server::ReportsServer, samples_server::SamplesServer,
    system_server::SystemServer, tasks_server::TasksServer, worker_hub_server::WorkerHubServer,
};
use tokio::net::TcpListener;
use tokio_stream::{StreamExt, wrappers::TcpListenerStream};
use tracing::info;

use crate::{
    config::SchedulerConfig,
    core::Scheduler,
    grpc::{
        auth,
        hub::HubApi,
        reports::ReportsApi,
        samples::{SamplesApi, SystemApi},
        tasks::TasksApi,
    },
    store::{self, Stores},
};

/// Largest gRPC message accepted or sent (upload chunks are far smaller).
const MAX_MESSAGE: usize = 16 << 20;
/// How long workers get to finish their assignments on shutdown.
const DRAIN_GRACE: Duration = Duration::from_secs(30);

/// A scheduler bound to its address, not yet serving.
#[derive(Debug)]
pub struct BoundScheduler {
    listener: TcpListener,
    scheduler: Arc<Scheduler>,
}

impl BoundScheduler {
    /// Opens the stores named in `config` and binds its address.
    pub async fn bind(config: SchedulerConfig) -> anyhow::Result<Self> {
        let stores = store::open(
            &config.task_store,
            &config.report_store,
            &config.blob_store,
            &config.s3,
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot open storage: {e}"))?;
        Self::bind_with(config, stores).await
    }

    /// Binds with stores opened by the caller.
    pub async fn bind_with(config: SchedulerConfig, stores: Stores) -> anyhow::Result<Self> {
        config
            .auth
            .check_listen("the scheduler", config.grpc_addr)
            .map_err(|e| anyhow::anyhow!(e))?;
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.grpc_addr))?;
        let mut config = config;
        config.grpc_addr = listener.local_addr()?;
        let scheduler = Scheduler::new(stores, config);
        scheduler
            .complete_settled()
            .await
            .map_err(|e| anyhow::anyhow!("cannot recover unfinished work: {e}"))?;
        Ok(Self {
            listener,
            scheduler,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.scheduler.config.grpc_addr
    }

    pub fn scheduler(&self) -> Arc<Scheduler> {
        Arc::clone(&self.scheduler)
    }

    /// Serves until `shutdown` resolves, then asks workers to drain, waits
    /// for their assignments (bounded), and stops.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let scheduler = self.scheduler;
        let addr = scheduler.config.grpc_addr;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<TasksServer<TasksApi>>().await;
        health.set_serving::<ReportsServer<ReportsApi>>().await;
        health.set_serving::<WorkerHubServer<HubApi>>().await;
        health.set_serving::<SamplesServer<SamplesApi>>().await;
        health.set_serving::<SystemServer<SystemApi>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // List only what this server serves (the descriptors also hold
            // AnalysisModule, which modules serve, not the scheduler).
            .with_service_name("multiscanner.v1.Tasks")
            .with_service_name("multiscanner.v1.Reports")
            .with_service_name("multiscanner.v1.WorkerHub")
            .with_service_name("multiscanner.v1.Samples")
            .with_service_name("multiscanner.v1.System")
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .build_v1()?;

        let dispatcher = tokio::spawn(Arc::clone(&scheduler).run_dispatcher());
        let reaper = tokio::spawn(Arc::clone(&scheduler).run_reaper());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let tokens = scheduler.config.auth.clone();
        let auth_layer = tower::ServiceBuilder::new()
            .map_request(auth::tag_path)
            .layer(tonic::service::InterceptorLayer::new(move |req| {
                auth::check(&tokens, req)
            }));
        let router = tonic::transport::Server::builder()
            .layer(auth_layer)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(
                TasksServer::new(TasksApi(Arc::clone(&scheduler)))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            )
            .add_service(
                ReportsServer::new(ReportsApi(Arc::clone(&scheduler)))
                    .max_encoding_message_size(MAX_MESSAGE),
            )
            .add_service(
                SamplesServer::new(SamplesApi(Arc::clone(&scheduler)))
                    .max_encoding_message_size(MAX_MESSAGE),
            )
            .add_service(SystemServer::new(SystemApi(Arc::clone(&scheduler))))
            .add_service(
                WorkerHubServer::new(HubApi(Arc::clone(&scheduler)))
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            );
        info!(%addr, "scheduler listening");
        // Small request/response exchanges must not wait on Nagle's
        // algorithm (40 ms stalls against delayed ACKs).
        let incoming = TcpListenerStream::new(self.listener).map(|conn| {
            if let Ok(c) = &conn {
                let _ = c.set_nodelay(true);
            }
            conn
        });
        let mut server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = stop_rx.await;
        }));
        tokio::select! {
            res = &mut server => {
                dispatcher.abort();
                reaper.abort();
                return res?.map_err(|e| anyhow::anyhow!("scheduler server failed: {e}"));
            }
            () = shutdown => {}
        }
        info!("scheduler shutting down: draining workers");
        dispatcher.abort();
        reaper.abort();
        scheduler.workers.drain_all();
        let drained = tokio::time::timeout(DRAIN_GRACE, async {
            while scheduler.workers.held_count() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        if drained.is_err() {
            info!("drain grace over; unfinished work stays queued for the next start");
        }
        let _ = stop_tx.send(());
        // Worker streams stay open until workers hang up; don't wait forever.
        if tokio::time::timeout(Duration::from_secs(2), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        info!("scheduler stopped");
        Ok(())
    }
}

/// Opens the stores, binds and serves until `shutdown`.
pub async fn run(
    config: SchedulerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    BoundScheduler::bind(config).await?.serve(shutdown).await
}
