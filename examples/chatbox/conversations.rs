//! The demo's conversations (SPEC §6): messages live here, keyed by session
//! id, not in the session. In the SQLite file of the sessions (a table of
//! the demo's own beside the store's), in memory, or in Redis next to the
//! sessions (the same server, cluster or Sentinel primary), where a
//! conversation's keys share the session's hash tag and so its slot.
//!
//! Each message carries an id the client generates: a repeated id is stored
//! once, so a client may retry a send whose answer it never got.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use visitor_session::SessionId;

/// Most messages one conversation keeps: a sanity cap far above any chat.
pub(crate) const MAX_MESSAGES: usize = 10_000;
/// Most text one conversation keeps, in bytes (SPEC §6): 4 MiB.
pub(crate) const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// Upper bound on one call to Redis or SQLite.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Who wrote a message.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Sender {
    /// The visitor, through the widget.
    Visitor,
    /// The site's team (here, the one automatic acknowledgement).
    Agent,
}

impl Sender {
    fn as_str(self) -> &'static str {
        match self {
            Self::Visitor => "visitor",
            Self::Agent => "agent",
        }
    }

    fn parse(text: &str) -> Self {
        if text == "agent" {
            Self::Agent
        } else {
            Self::Visitor
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) at_ms: u64,
    pub(crate) from: Sender,
}

/// What [`Conversations::append`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    Stored,
    /// A message with this id was stored before (a retried send).
    Again,
    /// The conversation holds [`MAX_MESSAGES`] or [`MAX_TEXT_BYTES`] already.
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
    /// Each message's place in `messages`, by id.
    places: HashMap<String, usize>,
    messages: Vec<Message>,
    bytes: usize,
}

impl Conversation {
    /// Whether `more` messages of `bytes` more text still fit.
    fn fits(&self, more: usize, bytes: usize) -> bool {
        self.messages.len() + more <= MAX_MESSAGES && self.bytes + bytes <= MAX_TEXT_BYTES
    }

    fn push(&mut self, message: Message) {
        self.places.insert(message.id.clone(), self.messages.len());
        self.bytes += message.text.len();
        self.messages.push(message);
    }
}

/// The messages of a page ending before place `end`: `limit` at most.
fn page_range(end: usize, limit: usize) -> std::ops::Range<usize> {
    end.saturating_sub(limit)..end
}

impl Conversations {
    pub(crate) fn memory() -> Self {
        Self::Memory(Mutex::default())
    }

    /// Appends `message` unless its id is known or the conversation is full;
    /// to a conversation that was empty, `first_reply` is appended after it,
    /// in the same step (the team's acknowledgement, exactly once).
    pub(crate) async fn append(
        &self,
        session: &SessionId,
        message: Message,
        first_reply: Message,
    ) -> Result<Appended, Unavailable> {
        match self {
            Self::Memory(all) => {
                let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
                let conversation = all.entry(*session).or_default();
                if conversation.places.contains_key(&message.id) {
                    return Ok(Appended::Again);
                }
                if !conversation.fits(1, message.text.len()) {
                    return Ok(Appended::Full);
                }
                let first = conversation.messages.is_empty();
                conversation.push(message);
                if first && conversation.fits(1, first_reply.text.len()) {
                    conversation.push(first_reply);
                }
                Ok(Appended::Stored)
            }
            Self::Redis(store) => store.append(session, &message, &first_reply).await,
            Self::Sqlite(store) => store.append(session, message, first_reply).await,
        }
    }

    /// A page of the conversation, oldest first: the latest `limit` messages,
    /// or the `limit` before the message `before` (none when it is unknown).
    pub(crate) async fn page(
        &self,
        session: &SessionId,
        limit: usize,
        before: Option<String>,
    ) -> Result<Vec<Message>, Unavailable> {
        match self {
            Self::Memory(all) => {
                let all = all.lock().unwrap_or_else(|p| p.into_inner());
                let Some(conversation) = all.get(session) else {
                    return Ok(Vec::new());
                };
                let end = match &before {
                    Some(id) => match conversation.places.get(id) {
                        Some(place) => *place,
                        None => return Ok(Vec::new()),
                    },
                    None => conversation.messages.len(),
                };
                Ok(conversation.messages[page_range(end, limit)].to_vec())
            }
            Self::Redis(store) => store.page(session, limit, before).await,
            Self::Sqlite(store) => store.page(session, limit, before).await,
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
    //! ...), and unique per conversation by its message id; and
    //! `chatbox_conversations`, each conversation's message count and text
    //! bytes, so that the caps cost one row, not a scan. Its own connection,
    //! each call one transaction on a blocking thread (the session store
    //! keeps its own connection, on its own thread).

    use std::sync::Arc;

    use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

    use super::*;

    const TABLES: &str = "
CREATE TABLE IF NOT EXISTS chatbox_messages (
    session TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    text TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    sender TEXT NOT NULL,
    PRIMARY KEY (session, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS chatbox_messages_by_id ON chatbox_messages (session, id);
CREATE TABLE IF NOT EXISTS chatbox_conversations (
    session TEXT PRIMARY KEY,
    messages INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
";

    pub(crate) struct Store {
        conn: Arc<Mutex<Connection>>,
    }

    fn insert(
        tx: &rusqlite::Transaction<'_>,
        session: &str,
        seq: i64,
        m: &Message,
    ) -> rusqlite::Result<()> {
        tx.execute(
            "INSERT INTO chatbox_messages (session, seq, id, text, at_ms, sender) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                session,
                seq,
                m.id,
                m.text,
                i64::try_from(m.at_ms).unwrap_or(i64::MAX),
                m.from.as_str()
            ],
        )?;
        Ok(())
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
                .and_then(|()| conn.execute_batch(TABLES))
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
            first_reply: Message,
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
                let (count, bytes): (i64, i64) = tx
                    .query_row(
                        "SELECT messages, bytes FROM chatbox_conversations WHERE session = ?1",
                        [&session],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()?
                    .unwrap_or((0, 0));
                let fits = |n: i64, b: i64| n <= MAX_MESSAGES as i64 && b <= MAX_TEXT_BYTES as i64;
                let (mut count, mut bytes) = (count + 1, bytes + message.text.len() as i64);
                if !fits(count, bytes) {
                    return Ok(Appended::Full);
                }
                insert(tx, &session, count, &message)?;
                let with_reply = (count + 1, bytes + first_reply.text.len() as i64);
                if count == 1 && fits(with_reply.0, with_reply.1) {
                    (count, bytes) = with_reply;
                    insert(tx, &session, count, &first_reply)?;
                }
                tx.execute(
                    "INSERT INTO chatbox_conversations (session, messages, bytes) \
                     VALUES (?1, ?2, ?3) \
                     ON CONFLICT (session) DO UPDATE SET messages = ?2, bytes = ?3",
                    params![session, count, bytes],
                )?;
                Ok(Appended::Stored)
            })
            .await
        }

        pub(crate) async fn page(
            &self,
            session: &SessionId,
            limit: usize,
            before: Option<String>,
        ) -> Result<Vec<Message>, Unavailable> {
            let session = session.as_str().to_owned();
            self.run(move |tx| {
                let end: i64 = match before {
                    Some(id) => {
                        let place = tx
                            .query_row(
                                "SELECT seq FROM chatbox_messages WHERE session = ?1 AND id = ?2",
                                params![session, id],
                                |row| row.get(0),
                            )
                            .optional()?;
                        match place {
                            Some(place) => place,
                            None => return Ok(Vec::new()),
                        }
                    }
                    None => i64::MAX,
                };
                let mut stmt = tx.prepare(
                    "SELECT id, text, at_ms, sender FROM chatbox_messages \
                     WHERE session = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
                )?;
                let mut page: Vec<Message> = stmt
                    .query_map(params![session, end, limit as i64], |row| {
                        Ok(Message {
                            id: row.get(0)?,
                            text: row.get(1)?,
                            at_ms: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                            from: Sender::parse(&row.get::<_, String>(3)?),
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                page.reverse();
                Ok(page)
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
                let taken: Option<i64> = tx
                    .query_row(
                        "SELECT 1 FROM chatbox_conversations WHERE session = ?1",
                        [&new],
                        |row| row.get(0),
                    )
                    .optional()?;
                if taken.is_none() {
                    for table in ["chatbox_messages", "chatbox_conversations"] {
                        tx.execute(
                            &format!("UPDATE {table} SET session = ?2 WHERE session = ?1"),
                            params![old, new],
                        )?;
                    }
                }
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
                tx.execute(
                    "DELETE FROM chatbox_conversations WHERE session = ?1",
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
    //! `chat:{<uuid>}:ids`, a hash of each message id's place in the list
    //! and `#bytes`, the conversation's text size (ids are letters, digits,
    //! `-`, `_` and `:`, never `#`): one slot, one script per call.

    use redis::aio::ConnectionLike;
    use tokio::sync::Mutex;

    use super::*;

    /// Appends a message unless its id is known or the conversation is
    /// full, and to an empty one the first reply after it.
    /// KEYS: the list, the id hash. ARGV: id, JSON, text bytes, the reply's
    /// id, JSON and text bytes, the caps on messages and on bytes.
    /// Returns STORED, AGAIN (a known id) or FULL.
    const APPEND: &str = r"
local AGAIN, STORED, FULL = 0, 1, 2
local list, places = KEYS[1], KEYS[2]
local id, json, len = ARGV[1], ARGV[2], tonumber(ARGV[3])
local reply_id, reply_json, reply_len = ARGV[4], ARGV[5], tonumber(ARGV[6])
local max_messages, max_bytes = tonumber(ARGV[7]), tonumber(ARGV[8])
if redis.call('HEXISTS', places, id) == 1 then return AGAIN end
local count = redis.call('LLEN', list)
local bytes = tonumber(redis.call('HGET', places, '#bytes') or '0')
if count + 1 > max_messages or bytes + len > max_bytes then return FULL end
redis.call('RPUSH', list, json)
redis.call('HSET', places, id, count)
bytes = bytes + len
if count == 0 and count + 2 <= max_messages and bytes + reply_len <= max_bytes then
  redis.call('RPUSH', list, reply_json)
  redis.call('HSET', places, reply_id, 1)
  bytes = bytes + reply_len
end
redis.call('HSET', places, '#bytes', bytes)
return STORED
";

    /// A page of a conversation, oldest first: the latest `limit` messages,
    /// or the `limit` before the message `before` ('' for the latest).
    /// KEYS: the list, the id hash. ARGV: limit, before.
    const PAGE: &str = r"
local list, places = KEYS[1], KEYS[2]
local limit, before = tonumber(ARGV[1]), ARGV[2]
local finish = redis.call('LLEN', list)
if before ~= '' then
  local place = redis.call('HGET', places, before)
  if not place then return {} end
  finish = tonumber(place)
end
if finish == 0 then return {} end
return redis.call('LRANGE', list, math.max(0, finish - limit), finish - 1)
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
        page: redis::Script,
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
                page: redis::Script::new(PAGE),
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
            first_reply: &Message,
        ) -> Result<Appended, Unavailable> {
            let (list, ids) = self.keys(session);
            let json = |m: &Message| serde_json::to_string(m).expect("a message serializes");
            let mut invocation = self.append.prepare_invoke();
            invocation
                .key(&list)
                .key(&ids)
                .arg(&message.id)
                .arg(json(message))
                .arg(message.text.len())
                .arg(&first_reply.id)
                .arg(json(first_reply))
                .arg(first_reply.text.len())
                .arg(MAX_MESSAGES)
                .arg(MAX_TEXT_BYTES);
            let code: i64 = self.run(Call::Script(&invocation)).await?;
            Ok(match code {
                1 => Appended::Stored,
                0 => Appended::Again,
                _ => Appended::Full,
            })
        }

        pub(crate) async fn page(
            &self,
            session: &SessionId,
            limit: usize,
            before: Option<String>,
        ) -> Result<Vec<Message>, Unavailable> {
            let (list, ids) = self.keys(session);
            let mut invocation = self.page.prepare_invoke();
            invocation
                .key(&list)
                .key(&ids)
                .arg(limit)
                .arg(before.unwrap_or_default());
            let items: Vec<String> = self.run(Call::Script(&invocation)).await?;
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
