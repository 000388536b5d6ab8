//! The demo's conversations (SPEC §6): messages live here, keyed by session
//! id, not in the session. In the SQLite file of the sessions (a table of
//! the demo's own beside the store's), in memory, or in Redis next to the
//! sessions (the same server, cluster or Sentinel primary), where a
//! conversation's keys share the session's hash tag and so its slot.
//!
//! Each message carries an id the client generates: a repeated id is stored
//! once, so a client may retry a send whose answer it never got.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use visitor_session::SessionId;

/// Most messages one conversation keeps: a sanity cap far above any chat.
pub(crate) const MAX_MESSAGES: usize = 10_000;
/// Upper bound on one call to Redis or SQLite.
const TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) at_ms: u64,
}

/// What [`Conversations::append`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    Stored,
    /// A message with this id was stored before (a retried send).
    Again,
    /// The conversation holds [`MAX_MESSAGES`] already.
    Full,
}

/// Why a conversation could not be read or written; the details are for the
/// log only.
#[derive(Debug)]
pub(crate) struct Unavailable(pub(crate) String);

pub(crate) enum Conversations {
    Sqlite(sqlite_conversations::Store),
    Memory(Mutex<HashMap<SessionId, Conversation>>),
    Redis(Box<redis_conversations::Store>),
}

#[derive(Default)]
pub(crate) struct Conversation {
    ids: HashSet<String>,
    messages: Vec<Message>,
}

impl Conversations {
    pub(crate) fn memory() -> Self {
        Self::Memory(Mutex::default())
    }

    pub(crate) async fn append(
        &self,
        session: &SessionId,
        message: Message,
    ) -> Result<Appended, Unavailable> {
        match self {
            Self::Memory(all) => {
                let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
                let conversation = all.entry(*session).or_default();
                Ok(if conversation.ids.contains(&message.id) {
                    Appended::Again
                } else if conversation.messages.len() >= MAX_MESSAGES {
                    Appended::Full
                } else {
                    conversation.ids.insert(message.id.clone());
                    conversation.messages.push(message);
                    Appended::Stored
                })
            }
            Self::Redis(store) => store.append(session, &message).await,
            Self::Sqlite(store) => store.append(session, message).await,
        }
    }

    pub(crate) async fn list(&self, session: &SessionId) -> Result<Vec<Message>, Unavailable> {
        match self {
            Self::Memory(all) => {
                let all = all.lock().unwrap_or_else(|p| p.into_inner());
                Ok(all
                    .get(session)
                    .map(|c| c.messages.clone())
                    .unwrap_or_default())
            }
            Self::Redis(store) => store.list(session).await,
            Self::Sqlite(store) => store.list(session).await,
        }
    }

    /// Moves the conversation of session `old` to session `new` (the session
    /// was renamed, SPEC §3.5); nothing to do when `old` has none. Safe to
    /// repeat.
    pub(crate) async fn rename(&self, old: &SessionId, new: &SessionId) -> Result<(), Unavailable> {
        match self {
            Self::Memory(all) => {
                let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(conversation) = all.remove(old) {
                    all.entry(*new).or_insert(conversation);
                }
                Ok(())
            }
            Self::Redis(store) => store.rename(old, new).await,
            Self::Sqlite(store) => store.rename(old, new).await,
        }
    }

    /// Deletes a conversation; whether there was one.
    pub(crate) async fn delete(&self, session: &SessionId) -> Result<bool, Unavailable> {
        match self {
            Self::Memory(all) => {
                let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
                Ok(all.remove(session).is_some())
            }
            Self::Redis(store) => store.delete(session).await,
            Self::Sqlite(store) => store.delete(session).await,
        }
    }
}

pub(crate) mod sqlite_conversations {
    //! `chatbox_messages`, in the file of the sessions: one row per message,
    //! keyed by its session's id and its place in the conversation (1, 2,
    //! ...), and unique per conversation by its message id. Its own
    //! connection, each call one transaction on a blocking thread (the
    //! session store keeps its own connection, on its own thread).

    use std::sync::Arc;

    use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

    use super::*;

    const TABLE: &str = "
CREATE TABLE IF NOT EXISTS chatbox_messages (
    session TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    text TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS chatbox_messages_by_id ON chatbox_messages (session, id);
";

    pub(crate) struct Store {
        conn: Arc<Mutex<Connection>>,
    }

    impl Store {
        /// The conversations in the SQLite file at `path`, which the session
        /// store has opened (and put in WAL mode) already.
        pub(crate) fn open(path: &str) -> Result<Self, String> {
            let conn = Connection::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
            // The session store's thread holds the write lock for one short
            // transaction at a time: wait for it rather than fail.
            conn.busy_timeout(TIMEOUT)
                .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
                .and_then(|()| conn.execute_batch(TABLE))
                .map_err(|e| format!("cannot keep conversations in {path}: {e}"))?;
            Ok(Self {
                conn: Arc::new(Mutex::new(conn)),
            })
        }

        /// Runs `work` as one transaction on a blocking thread.
        async fn run<T: Send + 'static>(
            &self,
            work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        ) -> Result<T, Unavailable> {
            let conn = self.conn.clone();
            let call = tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = work(&tx)?;
                tx.commit()?;
                Ok::<_, rusqlite::Error>(value)
            });
            match tokio::time::timeout(TIMEOUT, call).await {
                Ok(Ok(Ok(value))) => Ok(value),
                Ok(Ok(Err(e))) => Err(Unavailable(format!("SQLite: {e}"))),
                Ok(Err(e)) => Err(Unavailable(format!("SQLite call failed: {e}"))),
                Err(_) => Err(Unavailable(format!("SQLite: no answer within {TIMEOUT:?}"))),
            }
        }

        pub(crate) async fn append(
            &self,
            session: &SessionId,
            message: Message,
        ) -> Result<Appended, Unavailable> {
            let session = session.as_str().to_owned();
            self.run(move |tx| {
                let known: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM chatbox_messages WHERE session = ?1 AND id = ?2",
                        params![session, message.id],
                        |row| row.get(0),
                    )
                    .optional()?;
                if known.is_some() {
                    return Ok(Appended::Again);
                }
                // Messages are only ever added: the latest place is the count.
                let count: i64 = tx.query_row(
                    "SELECT coalesce(max(seq), 0) FROM chatbox_messages WHERE session = ?1",
                    [&session],
                    |row| row.get(0),
                )?;
                if count >= MAX_MESSAGES as i64 {
                    return Ok(Appended::Full);
                }
                tx.execute(
                    "INSERT INTO chatbox_messages (session, seq, id, text, at_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        session,
                        count + 1,
                        message.id,
                        message.text,
                        i64::try_from(message.at_ms).unwrap_or(i64::MAX)
                    ],
                )?;
                Ok(Appended::Stored)
            })
            .await
        }

        pub(crate) async fn list(&self, session: &SessionId) -> Result<Vec<Message>, Unavailable> {
            let session = session.as_str().to_owned();
            self.run(move |tx| {
                let mut stmt = tx.prepare(
                    "SELECT id, text, at_ms FROM chatbox_messages WHERE session = ?1 ORDER BY seq",
                )?;
                stmt.query_map([&session], |row| {
                    Ok(Message {
                        id: row.get(0)?,
                        text: row.get(1)?,
                        at_ms: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                    })
                })?
                .collect()
            })
            .await
        }

        /// Moves a conversation to a session's new id, unless the new id has one.
        pub(crate) async fn rename(
            &self,
            old: &SessionId,
            new: &SessionId,
        ) -> Result<(), Unavailable> {
            let (old, new) = (old.as_str().to_owned(), new.as_str().to_owned());
            self.run(move |tx| {
                tx.execute(
                    "UPDATE chatbox_messages SET session = ?2 WHERE session = ?1 \
                     AND NOT EXISTS (SELECT 1 FROM chatbox_messages WHERE session = ?2)",
                    params![old, new],
                )?;
                Ok(())
            })
            .await
        }

        pub(crate) async fn delete(&self, session: &SessionId) -> Result<bool, Unavailable> {
            let session = session.as_str().to_owned();
            self.run(move |tx| {
                let deleted = tx.execute(
                    "DELETE FROM chatbox_messages WHERE session = ?1",
                    [&session],
                )?;
                Ok(deleted > 0)
            })
            .await
        }
    }
}

pub(crate) mod redis_conversations {
    //! `chat:{<uuid>}`, a list of JSON messages, oldest first, and
    //! `chat:{<uuid>}:ids`, the set of their ids: one slot, one script.

    use redis::aio::ConnectionLike;
    use tokio::sync::Mutex;

    use super::*;

    /// Appends a message unless its id is known or the list is full.
    /// KEYS: the list, the id set. ARGV: id, JSON, cap.
    /// Returns 1 stored, 0 a known id, 2 full.
    const APPEND: &str = r"
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 2 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
";

    /// Moves a conversation to a session's new id, unless it is gone or
    /// the new id has one. KEYS: the old list and id set, the new ones (one
    /// slot: a renamed session's id is drawn in its old slot).
    const RENAME: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
return 1
";

    /// Where the conversations live.
    pub(crate) enum Server {
        Single(redis::Client),
        #[cfg(feature = "cluster")]
        Cluster(redis::cluster::ClusterClient),
        #[cfg(feature = "sentinel")]
        Sentinel(Mutex<redis::sentinel::SentinelClient>),
    }

    pub(crate) struct Store {
        server: Server,
        /// The open connection; dropped after a failure and opened again.
        conn: Mutex<Option<Conn>>,
        prefix: String,
        append: redis::Script,
        rename: redis::Script,
    }

    /// One call to Redis: a command, or the append script.
    #[derive(Clone, Copy)]
    enum Call<'a> {
        Command(&'a redis::Cmd),
        Script(&'a redis::ScriptInvocation<'a>),
    }

    #[derive(Clone)]
    pub(crate) enum Conn {
        Single(redis::aio::MultiplexedConnection),
        #[cfg(feature = "cluster")]
        Cluster(redis::cluster_async::ClusterConnection),
    }

    impl ConnectionLike for Conn {
        fn req_packed_command<'a>(
            &'a mut self,
            cmd: &'a redis::Cmd,
        ) -> redis::RedisFuture<'a, redis::Value> {
            match self {
                Self::Single(c) => c.req_packed_command(cmd),
                #[cfg(feature = "cluster")]
                Self::Cluster(c) => c.req_packed_command(cmd),
            }
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            cmd: &'a redis::Pipeline,
            offset: usize,
            count: usize,
        ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
            match self {
                Self::Single(c) => c.req_packed_commands(cmd, offset, count),
                #[cfg(feature = "cluster")]
                Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            }
        }

        fn get_db(&self) -> i64 {
            match self {
                Self::Single(c) => c.get_db(),
                #[cfg(feature = "cluster")]
                Self::Cluster(c) => c.get_db(),
            }
        }
    }

    impl Store {
        pub(crate) fn new(server: Server, prefix: &str) -> Self {
            Self {
                server,
                conn: Mutex::new(None),
                prefix: prefix.to_owned(),
                append: redis::Script::new(APPEND),
                rename: redis::Script::new(RENAME),
            }
        }

        fn keys(&self, session: &SessionId) -> (String, String) {
            let list = format!("{}chat:{{{}}}", self.prefix, session.uuid_str());
            let ids = format!("{list}:ids");
            (list, ids)
        }

        async fn connect(&self) -> redis::RedisResult<Conn> {
            match &self.server {
                Server::Single(client) => Ok(Conn::Single(
                    client.get_multiplexed_async_connection().await?,
                )),
                #[cfg(feature = "cluster")]
                Server::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
                #[cfg(feature = "sentinel")]
                Server::Sentinel(client) => {
                    let primary = client.lock().await.async_get_client().await?;
                    Ok(Conn::Single(
                        primary.get_multiplexed_async_connection().await?,
                    ))
                }
            }
        }

        /// Runs `call` on the connection (opened if needed) within the
        /// timeout. A connection found broken (Redis restarted, a failover)
        /// is replaced and the call made once more: every call here is safe
        /// to repeat (an append is keyed by its message id).
        async fn run<T: redis::FromRedisValue>(&self, call: Call<'_>) -> Result<T, Unavailable> {
            let attempt = async {
                let mut last = None;
                for _ in 0..2 {
                    let mut conn = self.open().await?;
                    let result = match call {
                        Call::Command(cmd) => cmd.query_async(&mut conn).await,
                        Call::Script(script) => script.invoke_async(&mut conn).await,
                    };
                    match result {
                        Ok(value) => return Ok(value),
                        Err(e)
                            if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() =>
                        {
                            *self.conn.lock().await = None;
                            last = Some(e);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(last.expect("two attempts failed"))
            };
            match tokio::time::timeout(TIMEOUT, attempt).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(Unavailable(format!("Redis: {e}"))),
                Err(_) => {
                    *self.conn.lock().await = None;
                    Err(Unavailable(format!("Redis: no answer within {TIMEOUT:?}")))
                }
            }
        }

        /// The open connection, or a new one.
        async fn open(&self) -> redis::RedisResult<Conn> {
            let mut slot = self.conn.lock().await;
            if let Some(conn) = slot.as_ref() {
                return Ok(conn.clone());
            }
            let conn = self.connect().await?;
            *slot = Some(conn.clone());
            Ok(conn)
        }

        pub(crate) async fn append(
            &self,
            session: &SessionId,
            message: &Message,
        ) -> Result<Appended, Unavailable> {
            let (list, ids) = self.keys(session);
            let json = serde_json::to_string(message).expect("a message serializes");
            let mut invocation = self.append.prepare_invoke();
            invocation
                .key(&list)
                .key(&ids)
                .arg(&message.id)
                .arg(&json)
                .arg(MAX_MESSAGES);
            let code: i64 = self.run(Call::Script(&invocation)).await?;
            Ok(match code {
                1 => Appended::Stored,
                0 => Appended::Again,
                _ => Appended::Full,
            })
        }

        pub(crate) async fn list(&self, session: &SessionId) -> Result<Vec<Message>, Unavailable> {
            let (list, _) = self.keys(session);
            let mut cmd = redis::cmd("LRANGE");
            cmd.arg(&list).arg(0).arg(-1);
            let items: Vec<String> = self.run(Call::Command(&cmd)).await?;
            Ok(items
                .iter()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect())
        }

        pub(crate) async fn rename(
            &self,
            old: &SessionId,
            new: &SessionId,
        ) -> Result<(), Unavailable> {
            let ((old_list, old_ids), (new_list, new_ids)) = (self.keys(old), self.keys(new));
            let mut invocation = self.rename.prepare_invoke();
            invocation
                .key(&old_list)
                .key(&old_ids)
                .key(&new_list)
                .key(&new_ids);
            let _: i64 = self.run(Call::Script(&invocation)).await?;
            Ok(())
        }

        pub(crate) async fn delete(&self, session: &SessionId) -> Result<bool, Unavailable> {
            let (list, ids) = self.keys(session);
            let mut cmd = redis::cmd("DEL");
            cmd.arg(&list).arg(&ids);
            let deleted: i64 = self.run(Call::Command(&cmd)).await?;
            Ok(deleted > 0)
        }
    }
}
