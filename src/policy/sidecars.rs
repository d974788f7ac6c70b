//! The sidecars in CEL, as `planner::sidecars` and `plan::sidecar_plan`
//! plan them (`docs/plan.md`, "Sidecars and mesh proxies"): each sidecar's
//! shutdown (gracehook's annotation, Istio's and Linkerd's settings, their
//! defaults), the `sleep` hook of classic sidecars, the sidecars' part of
//! the grace period, their notes and their invalid annotations.
//!
//! CEL has no JSON or YAML parser: `terminationDrainDuration` is found in
//! `proxy.istio.io/config` and `PROXY_CONFIG` with a pattern
//! (`docs/policy.md`, `mesh-config-pattern`).

use k8s_openapi::api::admissionregistration::v1::Variable;

use super::cel::{self, annotation};
use super::inputs::{OWN, PRE_STOP, has, own_only, per_container, var};
use super::options::Options;
use crate::planner::PrestopStyle;
use crate::planner::annotations as ann;
use crate::planner::hook;
use crate::planner::sidecars::{
    ISTIO_CONFIG, ISTIO_CONFIG_ENV, ISTIO_DEFAULT_DRAIN, ISTIO_EXIT_ON_ZERO, ISTIO_MINIMUM_DRAIN,
    ISTIO_PROXY, LINKERD_GRACE, LINKERD_GRACE_ENV, LINKERD_PROXY,
};

const DRAIN_KEY: &str = "terminationDrainDuration";

/// `{'k': dyn(v), ...}`: CEL maps need one value type.
fn record(fields: &[(&str, String)]) -> String {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}: dyn({v})", cel::string(k)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{{body}}}")
}

/// The entries of container `c`'s env named `name` (the first one counts,
/// and only its literal value).
fn env(name: &str) -> String {
    format!(
        "c.?env.orValue([]).filter(e, e.name == {})",
        cel::string(name)
    )
}

fn env_has(name: &str) -> String {
    format!("(size({e}) > 0 && has({e}[0].value))", e = env(name))
}

fn env_value(name: &str) -> String {
    format!("{}[0].value", env(name))
}

/// One attempt at reading another product's duration: `present` says it
/// was there to read, `ok` that it reads.
fn step(order: u8, present: &str, value: &str, source: &str) -> String {
    record(&[
        ("order", order.to_string()),
        ("present", present.to_string()),
        ("ok", format!("{present} && {}", cel::duration_ok(value))),
        (
            "seconds",
            format!(
                "{present} && {} ? {} : 0",
                cel::duration_ok(value),
                cel::seconds(value)
            ),
        ),
        ("source", cel::string(source)),
        (
            "what",
            format!(
                "{present} ? {} + ' (' + strings.quote({value}) + ')' : ''",
                cel::string(source)
            ),
        ),
    ])
}

/// The first step that reads, else the default; and the note about the
/// last step before it that was there but did not read (as
/// `planner::sidecars` overwrites its `unreadable`).
fn first_readable(
    steps: &[String],
    default_seconds: u64,
    default_source: &str,
    proxy: &str,
) -> String {
    let default = record(&[
        ("order", "99".to_string()),
        ("seconds", default_seconds.to_string()),
        ("source", cel::string(default_source)),
    ]);
    let planned = cel::string(&format!("; planned {proxy}'s shutdown as "));
    format!(
        "[[{steps}]].map(S, [S.filter(s, s.ok)].map(O, [size(O) > 0 ? O[0] : {default}].map(R, \
         [S.filter(s, s.present && !s.ok && s.order < R.order)].map(F, {{'seconds': dyn(R.seconds), 'source': dyn(R.source), \
         'note': dyn(size(F) > 0 ? 'could not read ' + F[size(F) - 1].what + {planned} + string(R.seconds) + 's (' + R.source + ')' : '')}})[0])[0])[0])[0]",
        steps = steps.join(", "),
    )
}

/// Istio's proxy (`planner::sidecars::istio`).
fn istio() -> String {
    let exit_on_zero = format!(
        "({} && {}.trim() == 'true')",
        env_has(ISTIO_EXIT_ON_ZERO),
        env_value(ISTIO_EXIT_ON_ZERO)
    );
    let minimum = format!(
        "({} ? {} : '5s')",
        env_has(ISTIO_MINIMUM_DRAIN),
        env_value(ISTIO_MINIMUM_DRAIN)
    );
    let config_key = cel::string(ISTIO_CONFIG);
    let config = annotation(&config_key);
    let key = cel::string(DRAIN_KEY);
    // drain_in: after the key's first occurrence, quotes, a colon, quotes,
    // then the scalar up to a space, quote, comma, brace or comment.
    let rest = format!(
        "{config}.substring({config}.indexOf({key}) + {})",
        DRAIN_KEY.len()
    );
    let prefix = format!(
        "{rest}.find({})",
        cel::string("^[\"']*[[:space:]]*:[[:space:]]*[\"']*")
    );
    let annotated = format!(
        "({} && {config}.indexOf({key}) >= 0 && {prefix} != '')",
        has(&config_key)
    );
    let annotated_value = format!(
        "{rest}.substring(size({prefix})).find({})",
        cel::string("^[^[:space:]\"',}#]*")
    );
    let json = env_value(ISTIO_CONFIG_ENV);
    let pair = format!(
        "{json}.find({})",
        cel::string("\"terminationDrainDuration\"[[:space:]]*:[[:space:]]*\"[^\"]*\"")
    );
    let in_env = format!("({} && {pair} != '')", env_has(ISTIO_CONFIG_ENV));
    let env_drain = format!(
        "[{pair}.substring({pair}.indexOf(':') + 1).trim()].map(v, v.substring(1, size(v) - 1))[0]"
    );
    let steps = [
        step(
            1,
            &exit_on_zero,
            &minimum,
            &format!("{ISTIO_MINIMUM_DRAIN} of {ISTIO_PROXY} ({ISTIO_EXIT_ON_ZERO})"),
        ),
        step(
            2,
            &annotated,
            &annotated_value,
            &format!("{DRAIN_KEY} in {ISTIO_CONFIG}"),
        ),
        step(
            3,
            &in_env,
            &env_drain,
            &format!("{DRAIN_KEY} in {ISTIO_CONFIG_ENV} of {ISTIO_PROXY}"),
        ),
    ];
    first_readable(
        &steps,
        ISTIO_DEFAULT_DRAIN,
        &format!("Istio's default {DRAIN_KEY}"),
        ISTIO_PROXY,
    )
}

/// Linkerd's proxy (`planner::sidecars::linkerd`).
fn linkerd() -> String {
    let key = cel::string(LINKERD_GRACE);
    let steps = [
        step(1, &has(&key), &annotation(&key), LINKERD_GRACE),
        step(
            2,
            &env_has(LINKERD_GRACE_ENV),
            &env_value(LINKERD_GRACE_ENV),
            &format!("{LINKERD_GRACE_ENV} of {LINKERD_PROXY}"),
        ),
    ];
    first_readable(
        &steps,
        0,
        &format!("{LINKERD_PROXY} exits once its requests are done"),
        LINKERD_PROXY,
    )
}

/// The shutdown of sidecar `c`: `{seconds, source, note}`.
fn shutdown() -> String {
    let key = per_container(ann::SIDECAR_SHUTDOWN, "c");
    format!(
        "{has} ? {{'seconds': dyn({seconds}), 'source': dyn({key}), 'note': dyn('')}} : \
         c.name == {istio_name} ? {istio} : c.name == {linkerd_name} ? {linkerd} : \
         {{'seconds': dyn(0), 'source': dyn('no shutdown known'), 'note': dyn('')}}",
        has = has(&key),
        seconds = cel::seconds(&annotation(&key)),
        istio_name = cel::string(ISTIO_PROXY),
        istio = istio(),
        linkerd_name = cel::string(LINKERD_PROXY),
        linkerd = linkerd(),
    )
}

/// How long a preStop hook that only waits keeps container `c` up
/// (`planner::sidecars::waits`), or -1.
fn waits() -> String {
    let p = PRE_STOP;
    let command = format!("{p}.exec.command");
    let words = format!(
        "(size({command}) == 3 && {command}[0].endsWith('sh') && {command}[1] == '-c' ? {command}[2].findAll('[^[:space:]]+') : {command})"
    );
    let plain = format!(
        "[{words}].map(W, size(W) == 2 && W[0].split('/')[size(W[0].split('/')) - 1] == 'sleep' && W[1].matches('^[+]?[0-9]{{1,18}}$') ? int(W[1].trim().replace('+', '')) : -1)[0]"
    );
    format!(
        "({OWN} ? (has({p}.sleep) ? ({p}.sleep.seconds >= 0 ? {p}.sleep.seconds : -1) : \
         has({p}.exec) && has({p}.exec.command) ? {plain} : -1) : -1)"
    )
}

/// One sidecar `c`: its shutdown and its own preStop.
fn entry(native: bool) -> String {
    record(&[
        ("name", "c.name".to_string()),
        ("native", native.to_string()),
        ("shutdown", shutdown()),
        ("lifecycle", "has(c.lifecycle)".to_string()),
        ("own", OWN.to_string()),
        (
            "ownSleep",
            format!("{} ? {PRE_STOP}.sleep.seconds : -1", own_only("sleep")),
        ),
        ("wait", waits()),
        (
            "optedOut",
            format!(
                "{} && {}.trim() == 'false'",
                has(&per_container(ann::INJECT, "c")),
                annotation(&per_container(ann::INJECT, "c"))
            ),
        ),
    ])
}

/// The classic sidecars' plan records, as `decisions::hooks` writes an
/// application container's, and their notes (`plan::sidecar_plan`).
fn classic_records(options: &Options) -> (String, String) {
    let exec_style = options.settings.prestop_style == PrestopStyle::Exec;
    // A classic sidecar sleeps through the drain (`plan::sidecar_plan`).
    let wanted = if exec_style {
        "s.optedOut || variables.drain == 0 || !variables.windows ? '' : 'sleep'"
    } else {
        "s.optedOut || variables.drain == 0 ? '' : 'sleep'"
    };
    let applied = "(s.hook == 'sleep' && s.ownSleep == variables.drain)";
    let early = "int(s.shutdown.seconds) < variables.drain";
    let ends =
        "before the ' + string(variables.drain) + 's drain of ' + variables.longest.name + ' ends'";
    let exec_note = if exec_style {
        format!(
            "!s.optedOut && variables.drain > 0 && !variables.windows && {early} ? 'sidecar ' + s.name + ' gets no preStop: without the native sleep action (--prestop-style exec) it would need a shell, which proxy images lack; it exits ' + string(s.shutdown.seconds) + 's after SIGTERM, {ends} : ''"
        )
    } else {
        "''".to_string()
    };
    let notes = format!(
        "[string(s.shutdown.note), {exec_note}, \
         s.optedOut && {early} ? 'sidecar ' + s.name + ' is opted out: it gets SIGTERM with the application and exits ' + string(s.shutdown.seconds) + 's later, {ends} : '', \
         s.own && !{applied} ? (s.wait >= 0 && s.wait + int(s.shutdown.seconds) < variables.drain ? 'sidecar ' + s.name + ' keeps its own preStop, which ends after ' + string(s.wait) + 's: with its ' + string(s.shutdown.seconds) + 's shutdown it exits {ends} : 'sidecar ' + s.name + ' already has a preStop hook; kept it unchanged') : ''].filter(n, n != '')"
    );
    let description = cel::concat(
        &hook::sleep_description(cel::Slot(0)),
        &["string(variables.drain)"],
    );
    let classic = format!(
        "variables.sidecars.filter(s, !s.native).map(s, {{'name': s.name, 'index': dyn(variables.containerNames.indexOf(s.name)), \
         'lifecycle': s.lifecycle, 'delay': dyn(variables.drain), 'timeout': dyn(0), 'command': dyn(''), \
         'own': s.own, 'ownSleep': s.ownSleep, 'wait': s.wait, 'optedOut': s.optedOut, 'shutdown': s.shutdown, \
         'hook': dyn({wanted}), 'argv': dyn([]), 'description': dyn({description}), 'sidecar': dyn(true)}})\
         .map(s, {{'name': s.name, 'index': s.index, 'lifecycle': s.lifecycle, 'delay': s.delay, 'timeout': s.timeout, \
         'command': s.command, 'hook': s.hook, 'argv': s.argv, 'description': s.description, 'sidecar': s.sidecar, \
         'own': s.own, 'ownSleep': s.ownSleep, 'wait': s.wait, 'optedOut': s.optedOut, 'shutdown': s.shutdown, \
         'add': dyn(!s.own && s.hook != ''), 'kept': dyn(s.own && !{applied}), \
         'status': dyn(s.own ? ({applied} ? 'sleep' : 'kept') : s.hook != '' ? 'sleep' : 'none')}})"
    );
    (classic, notes)
}

/// The sidecars and what they ask: `sidecars` (native ones in
/// `initContainers` order, then classic ones in pod order, each with its
/// shutdown), the classic ones' plan records (`classic`, fields as
/// `decisions::hooks` writes them, plus the notes), the merged `plan` in
/// pod order, and the sidecars' part of the grace period.
pub(super) fn variables(options: &Options) -> Vec<Variable> {
    let skip = cel::strings(options.settings.skip_containers.iter().map(String::as_str));
    let sidecars = format!(
        "size(variables.apps) == 0 ? [] : \
         object.spec.?initContainers.orValue([]).filter(c, c.?restartPolicy.orValue('') == 'Always').map(c, {}) + \
         object.spec.containers.filter(c, c.name in {skip}).map(c, {})",
        entry(true),
        entry(false)
    );
    let (classic, notes) = classic_records(options);
    vec![
        var(
            "sidecarNames",
            format!(
                "object.spec.?initContainers.orValue([]).filter(c, c.?restartPolicy.orValue('') == 'Always').map(c, c.name) + object.spec.containers.filter(c, c.name in {skip}).map(c, c.name)"
            ),
        ),
        var(
            "drain",
            "size(variables.apps) == 0 ? 0 : variables.apps.map(p, int(p.delay) + int(p.timeout)).max()"
                .to_string(),
        ),
        // The application container with the longest drain (the last of
        // equals, as `max_by_key` picks).
        var(
            "longest",
            "size(variables.apps) == 0 ? {'name': dyn(''), 'delay': dyn(0), 'timeout': dyn(0)} : [variables.apps.filter(p, int(p.delay) + int(p.timeout) == variables.drain)].map(L, L[size(L) - 1])[0]"
                .to_string(),
        ),
        var("sidecars", sidecars),
        var("classic", classic),
        // The mesh notes of native sidecars, then per classic sidecar its
        // mesh note and what its hook cannot do (`plan::sidecar_plan`).
        var(
            "sidecarNotes",
            format!(
                "variables.sidecars.filter(s, s.native).map(s, string(s.shutdown.note)).filter(n, n != '') + variables.classic.map(s, {notes}).flatten()"
            ),
        ),
        var(
            "plan",
            "object.spec.containers.filter(c, variables.apps.exists(p, p.name == c.name) || variables.classic.exists(p, p.name == c.name)).map(c, (variables.apps + variables.classic).filter(p, p.name == c.name)[0])"
                .to_string(),
        ),
        // `plan::sidecar_shutdown`: the longest classic shutdown, or the
        // native ones added up.
        var(
            "classicShutdown",
            "[variables.sidecars.filter(s, !s.native).map(s, int(s.shutdown.seconds))].map(L, size(L) == 0 ? 0 : L.max())[0]"
                .to_string(),
        ),
        var(
            "nativeShutdown",
            "[variables.sidecars.filter(s, s.native).map(s, int(s.shutdown.seconds))].map(L, size(L) == 0 ? 0 : L.sum())[0]"
                .to_string(),
        ),
        var(
            "sidecarShutdown",
            "variables.classicShutdown > variables.nativeShutdown ? variables.classicShutdown : variables.nativeShutdown"
                .to_string(),
        ),
        // The sidecar with the longest shutdown of its own (the last of
        // equals, natives first).
        var(
            "longestSidecar",
            "size(variables.sidecars) == 0 ? '' : [variables.sidecars.map(s, int(s.shutdown.seconds)).max()].map(m, [variables.sidecars.filter(s, int(s.shutdown.seconds) == m)].map(L, L[size(L) - 1].name)[0])[0]"
                .to_string(),
        ),
    ]
}

/// The first invalid annotation of each sidecar, in the planner's order:
/// its `gracehook.io/sidecar-shutdown.<container>`, then a classic one's
/// `gracehook.io/inject.<container>`. Read only for a pod with an
/// eligible container, as the planner reads them.
pub(super) fn problems(options: &Options) -> Variable {
    let skip = cel::strings(options.settings.skip_containers.iter().map(String::as_str));
    let shutdown = per_container(ann::SIDECAR_SHUTDOWN, "c");
    let inject = per_container(ann::INJECT, "c");
    let shutdown_value = annotation(&shutdown);
    let inject_value = format!("{}.trim()", annotation(&inject));
    let bad_shutdown = format!(
        "{} && !{} ? {} : ''",
        has(&shutdown),
        cel::duration_ok(&shutdown_value),
        cel::invalid(
            &shutdown,
            &shutdown_value,
            &cel::duration_reason(&shutdown_value),
            "5s"
        )
    );
    let bad_inject = format!(
        "!native && {} && !({inject_value} in ['true', 'false']) ? {} : ''",
        has(&inject),
        cel::invalid(
            &inject,
            &inject_value,
            "'must be \"true\" or \"false\"'",
            "false"
        )
    );
    var(
        "sidecarProblems",
        format!(
            "size(variables.apps) == 0 ? [] : \
             (object.spec.?initContainers.orValue([]).filter(c, c.?restartPolicy.orValue('') == 'Always').map(c, [true].map(native, [{bad_shutdown}, {bad_inject}])[0]) + \
             object.spec.containers.filter(c, c.name in {skip}).map(c, [false].map(native, [{bad_shutdown}, {bad_inject}])[0])).flatten().filter(m, m != '')"
        ),
    )
}
