//! A scheduler and its workers in one process, still talking gRPC over
//! loopback: what `all-in-one` and `scan` run.

use std::net::SocketAddr;

use multiscanner_scheduler::BoundScheduler;
use multiscanner_worker::Registry;
use tokio::{sync::watch, task::JoinHandle};

use crate::config::Config;

pub struct Mesh {
    pub addr: SocketAddr,
    stop_workers: watch::Sender<bool>,
    stop_scheduler: watch::Sender<bool>,
    scheduler: JoinHandle<anyhow::Result<()>>,
    workers: Vec<JoinHandle<anyhow::Result<()>>>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl Mesh {
    /// Starts the scheduler on `config.scheduler.grpc_addr` and `workers`
    /// workers dialling it.
    pub async fn start(config: &Config, workers: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(workers >= 1, "--workers must be at least 1");
        // Refuse a bad module list before anything starts.
        Registry::from_config(&config.worker.modules)?;
        let mut config = config.clone();
        config.resolve_stores();
        let bound = BoundScheduler::bind(config.scheduler.clone()).await?;
        let addr = bound.local_addr();
        let (stop_scheduler, rx) = watch::channel(false);
        let scheduler = tokio::spawn(bound.serve(stopped(rx)));
        let (stop_workers, rx) = watch::channel(false);
        let mut handles = Vec::new();
        let base_id = config.worker.effective_worker_id();
        for i in 0..workers {
            let mut wc = config.worker.clone();
            wc.schedulers = vec![format!("http://{addr}")];
            wc.worker_id = format!("{base_id}-{i}");
            handles.push(tokio::spawn(multiscanner_worker::run(
                wc,
                stopped(rx.clone()),
            )));
        }
        Ok(Self {
            addr,
            stop_workers,
            stop_scheduler,
            scheduler,
            workers: handles,
        })
    }

    /// Resolves when any component stops by itself (an error).
    pub async fn failed(&mut self) -> anyhow::Result<()> {
        let workers = futures::future::select_all(self.workers.iter_mut());
        let res = tokio::select! {
            res = &mut self.scheduler => res,
            (res, _, _) = workers => res,
        };
        res?
    }

    /// Stops everything at once, without letting work finish (an
    /// interrupted one-shot run).
    pub async fn abort(self) {
        for handle in self.workers.into_iter().chain([self.scheduler]) {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// Stops the workers (they finish what they hold and report it), then
    /// the scheduler.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop_workers.send(true);
        for w in self.workers {
            w.await??;
        }
        let _ = self.stop_scheduler.send(true);
        self.scheduler.await?
    }
}
