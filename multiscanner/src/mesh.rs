//! A scheduler and its workers in one process, still talking gRPC over
//! loopback: what `all-in-one` and `scan` run.

use std::net::SocketAddr;

use multiscanner_scheduler::BoundScheduler;
use multiscanner_worker::Registry;
use tokio::{sync::watch, task::JoinHandle};

use crate::config::Config;

pub struct Mesh {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

fn stopped(mut rx: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
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
        let (stop, rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(bound.serve(stopped(rx.clone())))];
        let base_id = config.worker.effective_worker_id();
        for i in 0..workers {
            let mut wc = config.worker.clone();
            wc.schedulers = vec![format!("http://{addr}")];
            wc.worker_id = format!("{base_id}-{i}");
            tasks.push(tokio::spawn(multiscanner_worker::run(wc, stopped(rx.clone()))));
        }
        Ok(Self { addr, stop, tasks })
    }

    /// Resolves when any component stops by itself (an error).
    pub async fn failed(&mut self) -> anyhow::Result<()> {
        let (res, _, _) = futures::future::select_all(self.tasks.iter_mut()).await;
        res?
    }

    /// Stops workers and scheduler, letting in-flight work finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await??;
        }
        Ok(())
    }
}
