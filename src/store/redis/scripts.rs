//! The Lua scripts of [`RedisStore`](super::RedisStore), one per store
//! operation, from the `.lua` files next to this one. Pieces that several
//! scripts share live in `lua/lib/` and are prepended to each script that
//! uses them.

use redis::{Arg, Cmd};

/// `lua/<name>.lua`, preceded by the `lua/lib/` pieces it uses; or, with
/// `=> [...]`, the files listed (paths under `lua/`), in that order.
macro_rules! lua {
    ($name:literal => [$($file:literal),+ $(,)?]) => {
        LuaScript::new(
            $name,
            concat!($(include_str!(concat!("lua/", $file, ".lua")), "\n",)+),
        )
    };
    ($name:literal $(, $lib:literal)*) => {
        LuaScript::new(
            $name,
            concat!(
                $(include_str!(concat!("lua/lib/", $lib, ".lua")), "\n",)*
                include_str!(concat!("lua/", $name, ".lua"))
            ),
        )
    };
}

/// One script: its source and the SHA-1 that `EVALSHA` calls it by.
pub(super) struct LuaScript {
    name: &'static str,
    source: &'static str,
    sha: String,
}

impl LuaScript {
    fn new(name: &'static str, source: &'static str) -> Self {
        Self {
            name,
            source,
            sha: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    /// The script's name (its file name without `.lua`).
    pub(super) fn name(&self) -> &'static str {
        self.name
    }

    /// `EVALSHA <sha> <keys...>`, to which the caller appends the arguments
    /// (room is made for `args` more taking about `bytes`).
    pub(super) fn call(&self, keys: &[&[u8]], args: usize, bytes: usize) -> Cmd {
        let key_bytes: usize = keys.iter().map(|k| k.len()).sum();
        let mut cmd = Cmd::with_capacity(3 + keys.len() + args, 60 + key_bytes + bytes);
        cmd.arg("EVALSHA").arg(self.sha.as_str()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        cmd
    }

    /// The same call as `evalsha`, sending the whole script (`EVAL`), for a
    /// server that does not have it cached; Redis caches it on the way.
    pub(super) fn eval_instead(&self, evalsha: &Cmd) -> Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(self.source);
        // Skip `EVALSHA` and the SHA; keep the key count, keys and arguments.
        for arg in evalsha.args_iter().skip(2) {
            if let Arg::Simple(bytes) = arg {
                cmd.arg(bytes);
            }
        }
        cmd
    }

    /// `SCRIPT LOAD <source>`.
    pub(super) fn load_cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(self.source);
        cmd
    }
}

/// Every script of the store.
pub(super) struct Scripts {
    pub(super) touch: LuaScript,
    pub(super) create: LuaScript,
    pub(super) commit: LuaScript,
    pub(super) cycle: LuaScript,
    pub(super) network: LuaScript,
    pub(super) reset: LuaScript,
    pub(super) delete: LuaScript,
    pub(super) ip_log: LuaScript,
    pub(super) network_stats: LuaScript,
    pub(super) token_session: LuaScript,
    pub(super) bind_token: LuaScript,
    pub(super) unbind_token: LuaScript,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            // The commonest case is answered before the other helpers are
            // defined (`lua/touch.lua`).
            touch: lua!("touch" => [
                "lib/record",
                "touch",
                "lib/permanent",
                "lib/session",
                "touch_rest",
            ]),
            // So are a temporary session's creation under no limit
            // (`lua/create.lua`) and a commit that promotes nothing
            // (`lua/commit.lua`).
            create: lua!("create" => [
                "lib/network",
                "create",
                "lib/args",
                "lib/data",
                "lib/permanent",
                "lib/admit",
                "create_rest",
            ]),
            commit: lua!("commit" => [
                "lib/args",
                "lib/data",
                "commit",
                "lib/permanent",
                "lib/network",
                "commit_rest",
            ]),
            cycle: lua!("cycle", "record", "permanent", "session"),
            network: lua!("network", "admit", "network"),
            reset: lua!("reset", "record", "permanent", "session"),
            delete: lua!("delete", "record", "permanent", "session"),
            ip_log: lua!("ip_log", "record", "permanent", "session"),
            network_stats: lua!("network_stats"),
            token_session: lua!("token_session", "token"),
            bind_token: lua!("bind_token", "token"),
            unbind_token: lua!("unbind_token", "token"),
        }
    }

    pub(super) fn all(&self) -> [&LuaScript; 12] {
        [
            &self.touch,
            &self.create,
            &self.commit,
            &self.cycle,
            &self.network,
            &self.reset,
            &self.delete,
            &self.ip_log,
            &self.network_stats,
            &self.token_session,
            &self.bind_token,
            &self.unbind_token,
        ]
    }
}
