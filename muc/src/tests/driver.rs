//! The service driver over in-memory stores: rooms and occupant ids
//! survive a restart.

use std::sync::Arc;

use switchboard_service::credentials::SecretKey;
use switchboard_service::{Outbox, Service, ServiceContext};
use switchboard_spool::store::ServiceStore;
use tokio::sync::mpsc;

use super::*;
use crate::MucService;
use switchboard_spool::store::memory::MemoryStores;
use switchboard_spool::store::{ArchiveStore, ServiceDataStore};

struct Running {
    tx: mpsc::Sender<Element>,
    rx: mpsc::Receiver<Element>,
    task: tokio::task::JoinHandle<()>,
}

fn start(data: &Arc<dyn ServiceDataStore>, archive: &Arc<dyn ArchiveStore>) -> Running {
    let el = Element::new("service", "")
        .with_attr("id", HOST)
        .with_attr("type", "muc");
    let svc = MucService::from_config(
        HOST,
        &el,
        ServiceStore::new(data.clone(), HOST),
        archive.clone(),
    )
    .unwrap();
    let (out, rx) = Outbox::channel();
    let ctx = ServiceContext {
        jid: HOST.into(),
        out,
        store: ServiceStore::new(data.clone(), HOST),
        key: Arc::new(SecretKey::from_bytes([0; 32])),
        config: el,
        admins: vec![],
        metrics: Default::default(),
    };
    let (tx, inbox) = mpsc::channel(16);
    let task = tokio::spawn(svc.run(ctx, inbox));
    Running { tx, rx, task }
}

impl Running {
    async fn send(&mut self, s: &str) -> Vec<Element> {
        self.tx.send(xml(s)).await.unwrap();
        // A ping to the service is the barrier: everything before it has
        // been answered when its result arrives.
        self.tx
            .send(xml(&format!("<iq type='get' id='barrier' from='{ROMEO}' to='{HOST}'><ping xmlns='urn:xmpp:ping'/></iq>")))
            .await
            .unwrap();
        let mut got = Vec::new();
        loop {
            let e = self.rx.recv().await.unwrap();
            if e.attr("id") == Some("barrier") {
                return got;
            }
            got.push(e);
        }
    }

    /// Sends an IQ and collects everything up to its answer (archive
    /// answers come after the barrier of [`Running::send`]).
    async fn until(&mut self, s: &str, id: &str) -> Vec<Element> {
        self.tx.send(xml(s)).await.unwrap();
        let mut got = Vec::new();
        loop {
            let e = self.rx.recv().await.unwrap();
            let done = e.attr("id") == Some(id) && e.name == "iq";
            got.push(e);
            if done {
                return got;
            }
        }
    }

    async fn stop(self) {
        drop(self.tx);
        self.task.await.unwrap();
    }
}

#[tokio::test]
async fn persistent_rooms_and_occupant_ids_survive_a_restart() {
    let stores = MemoryStores::new();
    let (data, archive) = (stores.service_data, stores.archive);
    let mut s = start(&data, &archive);
    s.send(&format!("<presence from='{ROMEO}' to='{ROOM}/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>")).await;
    s.send(&format!(
        "<iq type='set' id='c' from='{ROMEO}' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'>\
         <x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value></field>\
         <field var='muc#roomconfig_roomname'><value>Kitchen</value></field></x></query></iq>"
    ))
    .await;
    let out = s
        .send(&format!(
            "<message type='groupchat' from='{ROMEO}' to='{ROOM}'><body>before</body></message>"
        ))
        .await;
    let oid = out[0]
        .get_child("occupant-id", crate::ns::OCCUPANT_ID)
        .unwrap()
        .attr("id")
        .unwrap()
        .to_string();
    s.stop().await;

    let mut s = start(&data, &archive);
    let out = s.send(&format!("<iq type='get' id='i' from='{JULIET}' to='{HOST}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")).await;
    assert!(show(&out).contains("name=\"Kitchen\""), "{}", show(&out));
    let out = s.send(&format!("<presence from='{ROMEO}' to='{ROOM}/Romeo'><x xmlns='http://jabber.org/protocol/muc'/></presence>")).await;
    let own = last_to(&out, ROMEO, "presence");
    assert_eq!(item(own).attr("affiliation"), Some("owner"));
    assert!(!codes(own).contains(&201), "not created again");
    assert_eq!(
        own.get_child("occupant-id", crate::ns::OCCUPANT_ID)
            .unwrap()
            .attr("id"),
        Some(oid.as_str())
    );
    let out = s
        .until(
            &format!("<iq type='set' id='m' from='{ROMEO}' to='{ROOM}'><query xmlns='urn:xmpp:mam:2'/></iq>"),
            "m",
        )
        .await;
    assert!(
        show(&out).contains("before"),
        "the archive answers through the driver: {}",
        show(&out)
    );
    s.stop().await;
}
