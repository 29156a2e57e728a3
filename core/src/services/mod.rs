//! Hostname-addressed services as the core sees them.
//!
//! Every `<service>` in the config gets a slot in the router's service
//! registry at start-up, so its hostname is known (and bounced with
//! `remote-server-timeout` while down) from the first moment. A slot is
//! filled either by an in-process service that the [`supervisor`] runs and
//! restarts, or by an external component that connects over XEP-0114
//! (`net::component`). Admins hear about failures through
//! [`crate::admin::notify`].

pub mod supervisor;

use std::sync::Arc;

use switchboard_config::ServiceConfig;
use switchboard_service::{Identity, Service};

/// How a configured service is provided.
pub enum Provider {
    /// Runs inside the server, supervised.
    InProcess(Arc<dyn Service>),
    /// A separate program that connects to a component listener and
    /// authenticates with this secret.
    External { secret: String },
}

/// One configured service, ready to start.
pub struct ServicePlan {
    pub config: ServiceConfig,
    pub provider: Provider,
}

impl ServicePlan {
    /// How the service is named in the server's disco#items.
    pub fn display_name(&self) -> String {
        match &self.provider {
            Provider::InProcess(s) => {
                let Identity { name, .. } = s.identity();
                name
            }
            Provider::External { .. } => self
                .config
                .element
                .attr("name")
                .unwrap_or("External component")
                .to_string(),
        }
    }
}
