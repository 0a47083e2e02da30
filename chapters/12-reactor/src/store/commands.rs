//! The commands: lookup by name, arity check, and one function per command,
//! each with Redis 7's reply types and error texts (server.c processCommand,
//! t_string.c, expire.c, db.c, config.c, networking.c).

use crate::resp::{self, Argv, parse_i64};
use crate::session::Millis;
use crate::store::Db;

/// What a connection remembers between its commands.
#[derive(Debug, Default)]
pub struct Client {
    /// CLIENT ID (0 until the first command: ids come from the Db's counter).
    pub id: u64,
    /// CLIENT SETNAME.
    pub name: Option<Vec<u8>>,
    /// CLIENT SETINFO lib-name / lib-ver.
    pub lib_name: Option<Vec<u8>>,
    pub lib_ver: Option<Vec<u8>>,
}

/// One command's context.
struct Ctx<'a, 'b> {
    argv: Argv<'a>,
    db: &'b mut Db,
    client: &'b mut Client,
    now: Millis,
    out: &'b mut Vec<u8>,
    /// Set by QUIT: close once the reply is written.
    close: bool,
}

type Handler = fn(&mut Ctx<'_, '_>);

/// An argument as COMMAND DOCS describes it (what redis-cli shows as hints).
struct Arg {
    name: &'static str,
    kind: &'static str,
    token: Option<&'static str>,
    optional: bool,
    multiple: bool,
    args: &'static [Arg],
}

const fn arg(name: &'static str, kind: &'static str) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
        multiple: false,
        args: &[],
    }
}
const fn many(a: Arg) -> Arg {
    Arg {
        multiple: true,
        ..a
    }
}
const fn opt(a: Arg) -> Arg {
    Arg {
        optional: true,
        ..a
    }
}
const fn tok(name: &'static str, token: &'static str) -> Arg {
    Arg {
        token: Some(token),
        ..arg(name, "pure-token")
    }
}
const fn tok_arg(name: &'static str, kind: &'static str, token: &'static str) -> Arg {
    Arg {
        token: Some(token),
        ..arg(name, kind)
    }
}
const fn oneof(name: &'static str, args: &'static [Arg]) -> Arg {
    Arg {
        args,
        ..arg(name, "oneof")
    }
}
const fn block(name: &'static str, args: &'static [Arg]) -> Arg {
    Arg {
        args,
        ..arg(name, "block")
    }
}

/// A command: Redis's arity convention (n: exactly n arguments counting
/// the name; -n: at least n), its keys for COMMAND INFO, and its docs.
struct Command {
    name: &'static str,
    arity: i64,
    run: Handler,
    write: bool,
    /// First key, last key (-1: the last argument), step.
    keys: (i64, i64, i64),
    summary: &'static str,
    since: &'static str,
    group: &'static str,
    args: &'static [Arg],
    subcommands: &'static [Command],
}

const fn cmd(name: &'static str, arity: i64, run: Handler) -> Command {
    Command {
        name,
        arity,
        run,
        write: false,
        keys: (0, 0, 0),
        summary: "",
        since: "1.0.0",
        group: "connection",
        args: &[],
        subcommands: &[],
    }
}

const KEY: Arg = arg("key", "key");
const KEYS: Arg = many(arg("key", "key"));

/// The command table, the most used commands first (lookup is a scan).
static COMMANDS: &[Command] = &[
    Command {
        keys: (1, 1, 1),
        summary: "Get the value of a key",
        group: "string",
        args: &[KEY],
        ..cmd("get", 2, get)
    },
    Command {
        write: true,
        keys: (1, 1, 1),
        summary: "Set the string value of a key",
        group: "string",
        args: &[
            KEY,
            arg("value", "string"),
            opt(oneof("condition", &[tok("nx", "NX"), tok("xx", "XX")])),
            opt(tok("get", "GET")),
            opt(oneof(
                "expiration",
                &[
                    tok_arg("seconds", "integer", "EX"),
                    tok_arg("milliseconds", "integer", "PX"),
                    tok("keepttl", "KEEPTTL"),
                ],
            )),
        ],
        ..cmd("set", -3, set)
    },
    Command {
        summary: "Ping the server",
        args: &[opt(arg("message", "string"))],
        ..cmd("ping", -1, ping)
    },
    Command {
        write: true,
        keys: (1, 1, 1),
        summary: "Increment the integer value of a key by one",
        group: "string",
        args: &[KEY],
        ..cmd("incr", 2, incr)
    },
    Command {
        write: true,
        keys: (1, 1, 1),
        summary: "Decrement the integer value of a key by one",
        group: "string",
        args: &[KEY],
        ..cmd("decr", 2, decr)
    },
    Command {
        write: true,
        keys: (1, 1, 1),
        summary: "Increment the integer value of a key by the given amount",
        group: "string",
        args: &[KEY, arg("increment", "integer")],
        ..cmd("incrby", 3, incrby)
    },
    Command {
        write: true,
        keys: (1, -1, 2),
        summary: "Set multiple keys to multiple values",
        group: "string",
        since: "1.0.1",
        args: &[many(block("data", &[KEY, arg("value", "string")]))],
        ..cmd("mset", -3, mset)
    },
    Command {
        keys: (1, -1, 1),
        summary: "Get the values of all the given keys",
        group: "string",
        args: &[KEYS],
        ..cmd("mget", -2, mget)
    },
    Command {
        write: true,
        keys: (1, -1, 1),
        summary: "Delete a key",
        group: "generic",
        args: &[KEYS],
        ..cmd("del", -2, del)
    },
    Command {
        keys: (1, -1, 1),
        summary: "Determine if a key exists",
        group: "generic",
        args: &[KEYS],
        ..cmd("exists", -2, exists)
    },
    Command {
        write: true,
        keys: (1, 1, 1),
        summary: "Set a key's time to live in seconds",
        group: "generic",
        args: &[KEY, arg("seconds", "integer"), EXPIRE_CONDITION],
        ..cmd("expire", -3, expire)
    },
    Command {
        write: true,
        keys: (1, 1, 1),
        summary: "Set a key's time to live in milliseconds",
        group: "generic",
        since: "2.6.0",
        args: &[KEY, arg("milliseconds", "integer"), EXPIRE_CONDITION],
        ..cmd("pexpire", -3, pexpire)
    },
    Command {
        keys: (1, 1, 1),
        summary: "Get the time to live for a key in seconds",
        group: "generic",
        args: &[KEY],
        ..cmd("ttl", 2, ttl)
    },
    Command {
        keys: (1, 1, 1),
        summary: "Get the time to live for a key in milliseconds",
        group: "generic",
        since: "2.6.0",
        args: &[KEY],
        ..cmd("pttl", 2, pttl)
    },
    Command {
        write: true,
        keys: (1, 1, 1),
        summary: "Remove the expiration from a key",
        group: "generic",
        since: "2.2.0",
        args: &[KEY],
        ..cmd("persist", 2, persist)
    },
    Command {
        summary: "Echo the given string",
        args: &[arg("message", "string")],
        ..cmd("echo", 2, echo)
    },
    Command {
        summary: "Return the number of keys in the selected database",
        group: "server",
        ..cmd("dbsize", 1, dbsize)
    },
    Command {
        write: true,
        summary: "Remove all keys from all databases",
        group: "server",
        args: &[opt(oneof(
            "flush-type",
            &[tok("async", "ASYNC"), tok("sync", "SYNC")],
        ))],
        ..cmd("flushall", -1, flushall)
    },
    Command {
        summary: "Close the connection",
        ..cmd("quit", -1, quit)
    },
    Command {
        summary: "A container for server configuration commands",
        group: "server",
        since: "2.0.0",
        subcommands: &[Command {
            summary: "Get the values of configuration parameters",
            group: "server",
            since: "2.0.0",
            args: &[many(arg("parameter", "string"))],
            ..cmd("get", -3, config_get)
        }],
        ..cmd("config", -2, container)
    },
    Command {
        summary: "Get array of Redis command details",
        group: "server",
        since: "2.8.13",
        subcommands: &[
            Command {
                summary: "Get total number of Redis commands",
                group: "server",
                since: "2.8.13",
                ..cmd("count", 2, command_count)
            },
            Command {
                summary: "Get documentary information about Redis commands",
                group: "server",
                since: "7.0.0",
                args: &[opt(many(arg("command-name", "string")))],
                ..cmd("docs", -2, command_docs)
            },
            Command {
                summary: "Get array of specific Redis command details",
                group: "server",
                since: "2.8.13",
                args: &[opt(many(arg("command-name", "string")))],
                ..cmd("info", -2, command_info)
            },
        ],
        ..cmd("command", -1, command)
    },
    Command {
        summary: "A container for client connection commands",
        since: "2.4.0",
        subcommands: &[
            Command {
                summary: "Set the current connection name",
                since: "2.6.9",
                args: &[arg("connection-name", "string")],
                ..cmd("setname", 3, client_setname)
            },
            Command {
                summary: "Get the current connection name",
                since: "2.6.9",
                ..cmd("getname", 2, client_getname)
            },
            Command {
                summary: "Returns the client ID for the current connection",
                since: "5.0.0",
                ..cmd("id", 2, client_id)
            },
            Command {
                summary: "Set client or connection specific info",
                since: "7.2.0",
                args: &[oneof(
                    "attr",
                    &[
                        tok_arg("libname", "string", "LIB-NAME"),
                        tok_arg("libver", "string", "LIB-VER"),
                    ],
                )],
                ..cmd("setinfo", 4, client_setinfo)
            },
        ],
        ..cmd("client", -2, container)
    },
];

const EXPIRE_CONDITION: Arg = opt(oneof(
    "condition",
    &[
        tok("nx", "NX"),
        tok("xx", "XX"),
        tok("gt", "GT"),
        tok("lt", "LT"),
    ],
));

fn find<'t>(table: &'t [Command], name: &[u8]) -> Option<&'t Command> {
    table
        .iter()
        .find(|c| c.name.len() == name.len() && c.name.as_bytes().eq_ignore_ascii_case(name))
}

const SYNTAX_ERROR: &[u8] = b"-ERR syntax error\r\n";
const NOT_AN_INTEGER: &[u8] = b"-ERR value is not an integer or out of range\r\n";

/// Runs one command. Returns true if the connection must close once the
/// reply is out (QUIT). An empty command (`*0`, an empty line) gets no
/// reply, as in Redis.
pub fn execute(
    argv: Argv<'_>,
    db: &mut Db,
    client: &mut Client,
    now: Millis,
    out: &mut Vec<u8>,
) -> bool {
    if argv.is_empty() {
        return false;
    }
    let mut ctx = Ctx {
        argv,
        db,
        client,
        now,
        out,
        close: false,
    };
    let name = argv.get(0);
    let Some(mut command) = find(COMMANDS, name) else {
        unknown_command(&mut ctx);
        return false;
    };
    let mut fullname: (&str, &str) = (command.name, "");
    if !command.subcommands.is_empty() && argv.len() >= 2 {
        match find(command.subcommands, argv.get(1)) {
            Some(sub) => {
                fullname = (command.name, sub.name);
                command = sub;
            }
            // COMMAND alone is a command of its own; `COMMAND FOO` is not.
            None => {
                unknown_subcommand(&mut ctx);
                return false;
            }
        }
    }
    let argc = argv.len() as i64;
    if (command.arity > 0 && command.arity != argc) || argc < -command.arity {
        wrong_arity(ctx.out, fullname);
        return false;
    }
    (command.run)(&mut ctx);
    ctx.close
}

/// "wrong number of arguments for 'get' command" ('config|get' for a subcommand).
fn wrong_arity(out: &mut Vec<u8>, (name, sub): (&str, &str)) {
    out.extend_from_slice(b"-ERR wrong number of arguments for '");
    out.extend_from_slice(name.as_bytes());
    if !sub.is_empty() {
        out.push(b'|');
        out.extend_from_slice(sub.as_bytes());
    }
    out.extend_from_slice(b"' command\r\n");
}

/// Redis's commandCheckExistence text, byte for byte: the name cut at 128
/// bytes, then each argument quoted and followed by a space, until the
/// list reaches 128 bytes (each argument cut to what is left of them).
fn unknown_command(ctx: &mut Ctx<'_, '_>) {
    let mut text = b"ERR unknown command '".to_vec();
    let name = ctx.argv.get(0);
    text.extend_from_slice(&name[..name.len().min(128)]);
    text.extend_from_slice(b"', with args beginning with: ");
    let mut args_len = 0;
    for a in ctx.argv.iter().skip(1) {
        if args_len >= 128 {
            break;
        }
        let a = &a[..a.len().min(128 - args_len)];
        text.push(b'\'');
        text.extend_from_slice(a);
        text.extend_from_slice(b"' ");
        args_len += a.len() + 3;
    }
    resp::error(ctx.out, &text);
}

/// "unknown subcommand 'foo'. Try CONFIG HELP."
fn unknown_subcommand(ctx: &mut Ctx<'_, '_>) {
    let mut text = b"ERR unknown subcommand '".to_vec();
    let sub = ctx.argv.get(1);
    text.extend_from_slice(&sub[..sub.len().min(128)]);
    text.extend_from_slice(b"'. Try ");
    text.extend(ctx.argv.get(0).iter().map(u8::to_ascii_uppercase));
    text.extend_from_slice(b" HELP.");
    resp::error(ctx.out, &text);
}

/// CONFIG and CLIENT without a subcommand never get here (their arity is
/// -2, and with an argument the subcommand lookup answers).
fn container(ctx: &mut Ctx<'_, '_>) {
    unknown_subcommand(ctx);
}

fn ping(ctx: &mut Ctx<'_, '_>) {
    match ctx.argv.len() {
        1 => ctx.out.extend_from_slice(resp::PONG),
        2 => resp::bulk(ctx.out, ctx.argv.get(1)),
        _ => wrong_arity(ctx.out, ("ping", "")),
    }
}

fn echo(ctx: &mut Ctx<'_, '_>) {
    resp::bulk(ctx.out, ctx.argv.get(1));
}

fn quit(ctx: &mut Ctx<'_, '_>) {
    ctx.out.extend_from_slice(resp::OK);
    ctx.close = true;
}

fn get(ctx: &mut Ctx<'_, '_>) {
    match ctx.db.lookup(ctx.argv.get(1), ctx.now) {
        Some(entry) => resp::bulk(ctx.out, &entry.value),
        None => ctx.out.extend_from_slice(resp::NULL),
    }
}

/// "invalid expire time in 'set' command"
fn invalid_expire(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"-ERR invalid expire time in '");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"' command\r\n");
}

/// SET key value [NX | XX] [GET] [EX seconds | PX milliseconds | KEEPTTL]
/// (t_string.c parseExtendedStringArgumentsOrReply and setGenericCommand;
/// EXAT/PXAT are left out: they need the wall clock).
fn set(ctx: &mut Ctx<'_, '_>) {
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    // (the number, true if it is in seconds)
    let mut expire: Option<(&[u8], bool)> = None;
    let mut j = 3;
    while j < ctx.argv.len() {
        let opt = ctx.argv.get(j);
        let next = (j + 1 < ctx.argv.len()).then(|| ctx.argv.get(j + 1));
        let is = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
        if is("nx") && !xx {
            nx = true;
        } else if is("xx") && !nx {
            xx = true;
        } else if is("get") {
            get = true;
        } else if is("keepttl") && expire.is_none() {
            keep_ttl = true;
        } else if (is("ex") || is("px"))
            && !keep_ttl
            && expire.is_none_or(|(_, secs)| secs == is("ex"))
            && let Some(n) = next
        {
            expire = Some((n, is("ex")));
            j += 1;
        } else {
            ctx.out.extend_from_slice(SYNTAX_ERROR);
            return;
        }
        j += 1;
    }
    // The deadline, checked before anything changes (getExpireMillisecondsOrReply).
    let mut at = None;
    if let Some((n, seconds)) = expire {
        let Some(n) = parse_i64(n) else {
            ctx.out.extend_from_slice(NOT_AN_INTEGER);
            return;
        };
        let ms = if seconds {
            n.checked_mul(1000)
        } else {
            Some(n)
        };
        let deadline = ms
            .filter(|&ms| ms > 0)
            .and_then(|ms| ms.checked_add(ctx.now as i64));
        match deadline {
            Some(d) => at = Some(d as Millis),
            None => return invalid_expire(ctx.out, "set"),
        }
    }
    let key = ctx.argv.get(1);
    let found = match ctx.db.lookup(key, ctx.now) {
        Some(entry) => {
            if get {
                resp::bulk(ctx.out, &entry.value);
            }
            true
        }
        None => {
            if get {
                ctx.out.extend_from_slice(resp::NULL);
            }
            false
        }
    };
    if (nx && found) || (xx && !found) {
        if !get {
            ctx.out.extend_from_slice(resp::NULL);
        }
        return;
    }
    ctx.db.set(key, ctx.argv.get(2), ctx.now, keep_ttl);
    if let Some(at) = at {
        ctx.db.set_expiry(key, at);
    }
    if !get {
        ctx.out.extend_from_slice(resp::OK);
    }
}

fn incr(ctx: &mut Ctx<'_, '_>) {
    incr_by(ctx, 1);
}

fn decr(ctx: &mut Ctx<'_, '_>) {
    incr_by(ctx, -1);
}

fn incrby(ctx: &mut Ctx<'_, '_>) {
    match parse_i64(ctx.argv.get(2)) {
        Some(by) => incr_by(ctx, by),
        None => ctx.out.extend_from_slice(NOT_AN_INTEGER),
    }
}

/// t_string.c incrDecrCommand. The value keeps its expiry; the new number
/// is written into the old value's buffer (no allocation).
fn incr_by(ctx: &mut Ctx<'_, '_>, by: i64) {
    let key = ctx.argv.get(1);
    let (old, entry) = match ctx.db.lookup(key, ctx.now) {
        Some(entry) => match parse_i64(&entry.value) {
            Some(v) => (v, Some(entry)),
            None => return ctx.out.extend_from_slice(NOT_AN_INTEGER),
        },
        None => (0, None),
    };
    let Some(new) = old.checked_add(by) else {
        return resp::error(ctx.out, b"ERR increment or decrement would overflow");
    };
    match entry {
        Some(entry) => {
            entry.value.clear();
            resp::write_i64(&mut entry.value, new);
        }
        None => {
            let mut value = Vec::with_capacity(20);
            resp::write_i64(&mut value, new);
            ctx.db.insert_new(key, value);
        }
    }
    resp::integer(ctx.out, new);
}

fn mset(ctx: &mut Ctx<'_, '_>) {
    if ctx.argv.len().is_multiple_of(2) {
        return wrong_arity(ctx.out, ("mset", ""));
    }
    for j in (1..ctx.argv.len()).step_by(2) {
        ctx.db
            .set(ctx.argv.get(j), ctx.argv.get(j + 1), ctx.now, false);
    }
    ctx.out.extend_from_slice(resp::OK);
}

fn mget(ctx: &mut Ctx<'_, '_>) {
    resp::array_len(ctx.out, ctx.argv.len() - 1);
    for key in ctx.argv.iter().skip(1) {
        match ctx.db.lookup(key, ctx.now) {
            Some(entry) => resp::bulk(ctx.out, &entry.value),
            None => ctx.out.extend_from_slice(resp::NULL),
        }
    }
}

fn del(ctx: &mut Ctx<'_, '_>) {
    let mut n = 0;
    for key in ctx.argv.iter().skip(1) {
        // An expired key is deleted by the lookup, and not counted.
        if ctx.db.lookup(key, ctx.now).is_some() {
            ctx.db.remove(key);
            n += 1;
        }
    }
    resp::integer(ctx.out, n);
}

fn exists(ctx: &mut Ctx<'_, '_>) {
    let mut n = 0;
    for key in ctx.argv.iter().skip(1) {
        if ctx.db.lookup(key, ctx.now).is_some() {
            n += 1;
        }
    }
    resp::integer(ctx.out, n);
}

fn expire(ctx: &mut Ctx<'_, '_>) {
    expire_generic(ctx, true);
}

fn pexpire(ctx: &mut Ctx<'_, '_>) {
    expire_generic(ctx, false);
}

/// expire.c expireGenericCommand: EXPIRE key seconds [NX | XX | GT | LT].
/// A deadline that has already passed deletes the key (and replies 1).
fn expire_generic(ctx: &mut Ctx<'_, '_>, seconds: bool) {
    let name = if seconds { "expire" } else { "pexpire" };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in ctx.argv.iter().skip(3) {
        match opt.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                let mut text = b"ERR Unsupported option ".to_vec();
                text.extend_from_slice(opt);
                return resp::error(ctx.out, &text);
            }
        }
    }
    if nx && (xx || gt || lt) {
        return resp::error(
            ctx.out,
            b"ERR NX and XX, GT or LT options at the same time are not compatible",
        );
    }
    if gt && lt {
        return resp::error(
            ctx.out,
            b"ERR GT and LT options at the same time are not compatible",
        );
    }
    let Some(n) = parse_i64(ctx.argv.get(2)) else {
        return ctx.out.extend_from_slice(NOT_AN_INTEGER);
    };
    let when = if seconds {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    let Some(when) = when.and_then(|w| w.checked_add(ctx.now as i64)) else {
        return invalid_expire(ctx.out, name);
    };
    let key = ctx.argv.get(1);
    if ctx.db.lookup(key, ctx.now).is_none() {
        return resp::integer(ctx.out, 0);
    }
    let current = ctx.db.expiry_of(key).map(|at| at as i64);
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        return resp::integer(ctx.out, 0);
    }
    if when <= ctx.now as i64 {
        ctx.db.remove(key);
    } else {
        ctx.db.set_expiry(key, when as Millis);
    }
    resp::integer(ctx.out, 1);
}

fn ttl(ctx: &mut Ctx<'_, '_>) {
    ttl_generic(ctx, false);
}

fn pttl(ctx: &mut Ctx<'_, '_>) {
    ttl_generic(ctx, true);
}

/// -2: no such key; -1: no expiry; else the time left, rounded to the
/// nearest second for TTL (expire.c ttlGenericCommand).
fn ttl_generic(ctx: &mut Ctx<'_, '_>, ms: bool) {
    let key = ctx.argv.get(1);
    if ctx.db.lookup(key, ctx.now).is_none() {
        return resp::integer(ctx.out, -2);
    }
    let Some(at) = ctx.db.expiry_of(key) else {
        return resp::integer(ctx.out, -1);
    };
    let left = at.saturating_sub(ctx.now) as i64;
    resp::integer(ctx.out, if ms { left } else { (left + 500) / 1000 });
}

fn persist(ctx: &mut Ctx<'_, '_>) {
    let key = ctx.argv.get(1);
    let done = ctx.db.lookup(key, ctx.now).is_some() && ctx.db.persist(key);
    resp::integer(ctx.out, i64::from(done));
}

fn dbsize(ctx: &mut Ctx<'_, '_>) {
    resp::integer(ctx.out, ctx.db.len() as i64);
}

fn flushall(ctx: &mut Ctx<'_, '_>) {
    let ok = match ctx.argv.len() {
        1 => true,
        2 => {
            let a = ctx.argv.get(1);
            a.eq_ignore_ascii_case(b"sync") || a.eq_ignore_ascii_case(b"async")
        }
        _ => false,
    };
    if !ok {
        return ctx.out.extend_from_slice(SYNTAX_ERROR);
    }
    ctx.db.clear();
    ctx.out.extend_from_slice(resp::OK);
}

/// The configuration this server reports. redis-benchmark asks for `save`
/// and `appendonly` before it starts, and warns if it cannot get them.
/// Both are true of this server: it never writes anything to disk.
const CONFIG: &[(&str, &str)] = &[("appendonly", "no"), ("save", "")];

/// CONFIG GET parameter [parameter ...]: glob patterns, matched without
/// regard to case; each matching parameter once, as name/value pairs.
fn config_get(ctx: &mut Ctx<'_, '_>) {
    let matches = |name: &str| {
        ctx.argv
            .iter()
            .skip(2)
            .any(|pattern| glob_match(pattern, name.as_bytes()))
    };
    let found: Vec<&(&str, &str)> = CONFIG.iter().filter(|(name, _)| matches(name)).collect();
    resp::array_len(ctx.out, found.len() * 2);
    for (name, value) in found {
        resp::bulk(ctx.out, name.as_bytes());
        resp::bulk(ctx.out, value.as_bytes());
    }
}

/// Redis's stringmatchlen with nocase, for `*`, `?`, `[...]` and `\`.
fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let Some((&p, rest)) = pattern.split_first() else {
        return s.is_empty();
    };
    match p {
        b'*' => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
        b'?' => !s.is_empty() && glob_match(rest, &s[1..]),
        b'[' => {
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let (class, after) = (&rest[..end], &rest[end + 1..]);
            let Some(&c) = s.first() else {
                return false;
            };
            let (negate, class) = match class.split_first() {
                Some((b'^', tail)) => (true, tail),
                _ => (false, class),
            };
            let c = c.to_ascii_lowercase();
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    let (lo, hi) = (
                        class[i].to_ascii_lowercase(),
                        class[i + 2].to_ascii_lowercase(),
                    );
                    hit |= (lo.min(hi)..=lo.max(hi)).contains(&c);
                    i += 3;
                } else {
                    hit |= class[i].to_ascii_lowercase() == c;
                    i += 1;
                }
            }
            hit != negate && glob_match(after, &s[1..])
        }
        b'\\' if !rest.is_empty() => {
            s.first().is_some_and(|c| c.eq_ignore_ascii_case(&rest[0]))
                && glob_match(&rest[1..], &s[1..])
        }
        _ => s.first().is_some_and(|c| c.eq_ignore_ascii_case(&p)) && glob_match(rest, &s[1..]),
    }
}

/// COMMAND (no subcommand): the details of every command.
fn command(ctx: &mut Ctx<'_, '_>) {
    resp::array_len(ctx.out, COMMANDS.len());
    for c in COMMANDS {
        command_info_of(ctx.out, c);
    }
}

fn command_count(ctx: &mut Ctx<'_, '_>) {
    resp::integer(ctx.out, COMMANDS.len() as i64);
}

/// COMMAND INFO [name ...]: one entry per name, null for an unknown one.
fn command_info(ctx: &mut Ctx<'_, '_>) {
    if ctx.argv.len() == 2 {
        return command(ctx);
    }
    resp::array_len(ctx.out, ctx.argv.len() - 2);
    for name in ctx.argv.iter().skip(2) {
        match find(COMMANDS, name) {
            Some(c) => command_info_of(ctx.out, c),
            None => ctx.out.extend_from_slice(b"*-1\r\n"),
        }
    }
}

/// The first six fields of Redis's COMMAND reply: name, arity, flags,
/// first key, last key, step.
fn command_info_of(out: &mut Vec<u8>, c: &Command) {
    resp::array_len(out, 6);
    resp::bulk(out, c.name.as_bytes());
    resp::integer(out, c.arity);
    let flags: &[&[u8]] = if c.write {
        &[b"write"]
    } else {
        &[b"readonly", b"fast"]
    };
    resp::array_len(out, flags.len());
    for f in flags {
        resp::simple(out, f);
    }
    resp::integer(out, c.keys.0);
    resp::integer(out, c.keys.1);
    resp::integer(out, c.keys.2);
}

/// COMMAND DOCS [name ...]: what redis-cli 7 asks for when it starts, to
/// show help and hints. A flat list of name, then the doc as a list of
/// field/value pairs (RESP2 has no map type).
fn command_docs(ctx: &mut Ctx<'_, '_>) {
    let wanted: Vec<&Command> = if ctx.argv.len() == 2 {
        COMMANDS.iter().collect()
    } else {
        ctx.argv
            .iter()
            .skip(2)
            .filter_map(|n| find(COMMANDS, n))
            .collect()
    };
    resp::array_len(ctx.out, wanted.len() * 2);
    for c in wanted {
        resp::bulk(ctx.out, c.name.as_bytes());
        doc_of(ctx.out, c);
    }
}

fn doc_of(out: &mut Vec<u8>, c: &Command) {
    let fields = 3 + usize::from(!c.args.is_empty()) + usize::from(!c.subcommands.is_empty());
    resp::array_len(out, fields * 2);
    for (field, value) in [
        ("summary", c.summary),
        ("since", c.since),
        ("group", c.group),
    ] {
        resp::bulk(out, field.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    if !c.args.is_empty() {
        resp::bulk(out, b"arguments");
        args_doc(out, c.args);
    }
    if !c.subcommands.is_empty() {
        resp::bulk(out, b"subcommands");
        resp::array_len(out, c.subcommands.len() * 2);
        for sub in c.subcommands {
            let full = format!("{}|{}", c.name, sub.name);
            resp::bulk(out, full.as_bytes());
            doc_of(out, sub);
        }
    }
}

fn args_doc(out: &mut Vec<u8>, args: &[Arg]) {
    resp::array_len(out, args.len());
    for a in args {
        let flags = usize::from(a.optional) + usize::from(a.multiple);
        let fields = 2
            + usize::from(a.token.is_some())
            + usize::from(flags > 0)
            + usize::from(!a.args.is_empty());
        resp::array_len(out, fields * 2);
        resp::bulk(out, b"name");
        resp::bulk(out, a.name.as_bytes());
        resp::bulk(out, b"type");
        resp::bulk(out, a.kind.as_bytes());
        if let Some(token) = a.token {
            resp::bulk(out, b"token");
            resp::bulk(out, token.as_bytes());
        }
        if flags > 0 {
            resp::bulk(out, b"flags");
            resp::array_len(out, flags);
            if a.optional {
                resp::simple(out, b"optional");
            }
            if a.multiple {
                resp::simple(out, b"multiple");
            }
        }
        if !a.args.is_empty() {
            resp::bulk(out, b"arguments");
            args_doc(out, a.args);
        }
    }
}

/// networking.c validateClientAttr: printable ASCII without spaces.
fn valid_attr(value: &[u8]) -> bool {
    value.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn client_setname(ctx: &mut Ctx<'_, '_>) {
    let name = ctx.argv.get(2);
    if !valid_attr(name) {
        return resp::error(
            ctx.out,
            b"ERR Client names cannot contain spaces, newlines or special characters.",
        );
    }
    ctx.client.name = (!name.is_empty()).then(|| name.to_vec());
    ctx.out.extend_from_slice(resp::OK);
}

fn client_getname(ctx: &mut Ctx<'_, '_>) {
    match &ctx.client.name {
        Some(name) => resp::bulk(ctx.out, name),
        None => ctx.out.extend_from_slice(resp::NULL),
    }
}

fn client_id(ctx: &mut Ctx<'_, '_>) {
    resp::integer(ctx.out, ctx.client.id as i64);
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2; redis-py and other
/// clients send it when they connect).
fn client_setinfo(ctx: &mut Ctx<'_, '_>) {
    let attr = ctx.argv.get(2);
    let value = ctx.argv.get(3);
    let slot = if attr.eq_ignore_ascii_case(b"lib-name") {
        &mut ctx.client.lib_name
    } else if attr.eq_ignore_ascii_case(b"lib-ver") {
        &mut ctx.client.lib_ver
    } else {
        let mut text = b"ERR Unrecognized option '".to_vec();
        text.extend_from_slice(attr);
        text.push(b'\'');
        return resp::error(ctx.out, &text);
    };
    if !valid_attr(value) {
        let mut text = b"ERR ".to_vec();
        text.extend_from_slice(attr);
        text.extend_from_slice(b" cannot contain spaces, newlines or special characters.");
        return resp::error(ctx.out, &text);
    }
    *slot = (!value.is_empty()).then(|| value.to_vec());
    ctx.out.extend_from_slice(resp::OK);
}
