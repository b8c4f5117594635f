//! A cluster member running in this process.

use std::thread::JoinHandle;

use super::client::{Client, ClientConfig};
use crate::error::{Error, Result};
use crate::runtime::node::{EventLoop, LoopHandle, NodeCommand, NodeConfig};

/// A running member: its event loop thread and the handle that stops it.
pub struct Node {
    config: NodeConfig,
    handle: LoopHandle,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Node {
    /// Starts a member: opens (and locks) its data directory, binds its address and starts
    /// its event loop. Start-up problems are returned here, before anything runs.
    ///
    /// A `listen` address with port 0 takes any free port (fine for a one-member cluster: the
    /// others would not know where to reach it); [`Node::address`] says which.
    pub fn start(config: NodeConfig) -> Result<Node> {
        let (event_loop, handle) = EventLoop::open(config)?;
        let config = event_loop.config().clone();
        let thread = std::thread::Builder::new()
            .name(format!("accord-node-{}", config.id))
            .spawn(move || event_loop.run())
            .map_err(|e| Error::io("starting the event loop thread", &e))?;
        Ok(Node {
            config,
            handle,
            thread: Some(thread),
        })
    }

    /// The address this member listens on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.config.listen
    }

    /// A client of this member: its requests reach the event loop through a channel and come
    /// back through a one-shot slot (no socket); it follows the leader over the network when
    /// this member is not it.
    pub fn client(&self) -> Result<Client> {
        let mut endpoints = vec![self.config.listen.to_string()];
        endpoints.extend(
            self.config
                .members
                .iter()
                .filter(|(&id, _)| id != self.config.id)
                .map(|(_, address)| address.to_string()),
        );
        let config = ClientConfig {
            cluster: self.config.cluster,
            ..ClientConfig::new(endpoints)
        };
        Client::connect_local(config, self.handle.clone())
    }

    /// Waits until the event loop ends (it ends on [`Node::stop`] or on a storage failure,
    /// which is returned).
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Corrupt("the event loop thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Stops the member and waits for its thread.
    pub fn stop(self) -> Result<()> {
        let _ = self.handle.send(NodeCommand::Stop);
        self.wait()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.handle.send(NodeCommand::Stop);
            let _ = thread.join();
        }
    }
}
