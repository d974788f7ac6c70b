//! The preStop hooks gracehook writes, and what happens to a container's own
//! (`docs/plan.md`, "What gets written").

use std::fmt::Display;

use k8s_openapi::api::core::v1::{ExecAction, LifecycleHandler, SleepAction};

/// A hook gracehook can write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// The kubelet's native `sleep` action.
    Sleep {
        /// The drain delay.
        seconds: u64,
    },
    /// `["sh", "-c", "sleep d"]`, or with a drain command
    /// `["sh", "-c", <drain_script>, "gracehook-drain", <command>]`.
    Shell {
        /// The drain delay.
        delay: u64,
        /// With the request timeout to wait out after it: the drain commands
        /// people use (`apachectl -k graceful-stop`, `nginx -s quit`) return at
        /// once, and the kubelet sends SIGTERM as soon as the hook ends.
        command: Option<(String, u64)>,
    },
}

impl Hook {
    /// The hook as the Kubernetes API writes it.
    pub fn handler(&self) -> LifecycleHandler {
        match self {
            Hook::Sleep { seconds } => LifecycleHandler {
                sleep: Some(SleepAction {
                    // parse_seconds caps durations at i64::MAX.
                    seconds: i64::try_from(*seconds).unwrap_or(i64::MAX),
                }),
                ..Default::default()
            },
            Hook::Shell { .. } => LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(self.argv()),
                }),
                ..Default::default()
            },
        }
    }

    /// The exec hook's command line. The drain command is never pasted into
    /// the script: it is the script's `$1`, run by a shell of its own, so
    /// that no text in it — a trailing `;` or `&`, a `#` comment, a quote,
    /// a newline — can change how long the hook waits.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["sh".to_string(), "-c".to_string(), self.script()];
        if let Hook::Shell {
            command: Some((cmd, _)),
            ..
        } = self
        {
            argv.push(DRAIN_NAME.to_string());
            argv.push(cmd.clone());
        }
        argv
    }

    /// The shell script: `sleep d`, or the seed recipe's
    /// `sleep 3; apachectl -k graceful-stop; sleep 30` made to end cleanly
    /// and to run the drain command (`$1`) in a shell of its own.
    ///
    /// A server that drains by itself may end by signalling every process
    /// of its container: Apache's prefork master, PID 1, sends
    /// `kill(-1, SIGTERM)` once its workers are done. A hook still in its
    /// last `sleep` then dies of that SIGTERM, exit 143, and the kubelet
    /// records a `FailedPreStopHook` warning for a drain that went right.
    /// So the last wait runs in the background and the shell traps TERM:
    /// it still waits up to `t` seconds, and ends with 0 when the server
    /// does (`docs/plan.md`, "Why the hook traps TERM"). The drain command
    /// runs beside that wait rather than before it, so one that never
    /// returns cannot hold the hook past `d + t`.
    pub fn script(&self) -> String {
        match self {
            Hook::Shell {
                delay,
                command: Some((_, timeout)),
            } => drain_script(delay, timeout),
            Hook::Shell { delay, .. } | Hook::Sleep { seconds: delay } => sleep_script(delay),
        }
    }

    /// For people, what it waits for: `sleep 3s; apachectl -k graceful-stop; sleep 30s`.
    pub fn describe(&self) -> String {
        match self {
            Hook::Shell {
                delay,
                command: Some((cmd, timeout)),
            } => drain_description(delay, printable(cmd), timeout),
            Hook::Shell { delay, .. } | Hook::Sleep { seconds: delay } => sleep_description(delay),
        }
    }

    /// The hook gracehook wrote, read back from a container's `preStop`:
    /// the inverse of [`Hook::handler`], `None` for any other hook (one a
    /// person wrote, or one from another version of gracehook). The
    /// drain-outcome observer reads delays and timeouts from the pod itself,
    /// so that it judges a termination by what the kubelet really ran.
    pub fn from_handler(handler: &LifecycleHandler) -> Option<Hook> {
        if let Some(sleep) = &handler.sleep {
            return u64::try_from(sleep.seconds)
                .ok()
                .map(|seconds| Hook::Sleep { seconds });
        }
        let argv = handler.exec.as_ref()?.command.as_deref()?;
        let hook = match argv {
            [sh, c, script] if sh == "sh" && c == "-c" => Hook::Shell {
                delay: number_between(script, "sleep ", "")?,
                command: None,
            },
            [sh, c, script, name, command] if sh == "sh" && c == "-c" && name == DRAIN_NAME => {
                let (delay, rest) = script
                    .strip_prefix("trap 'exit 0' TERM; sleep ")?
                    .split_once(';')?;
                let timeout = number_between(rest, " sh -c \"$1\" & sleep ", " & wait $!")?;
                Hook::Shell {
                    delay: delay.parse().ok()?,
                    command: Some((command.clone(), timeout)),
                }
            }
            _ => return None,
        };
        // Only an exact round trip is gracehook's text.
        (hook.argv() == argv).then_some(hook)
    }

    /// The word recorded in the `gracehook.io/status` annotation.
    pub fn kind(&self) -> &'static str {
        match self {
            Hook::Sleep { .. } => "sleep",
            Hook::Shell { .. } => "exec",
        }
    }
}

// The texts below are generic so that `policy` writes the same words in
// CEL, with expressions where the numbers and the command go.

/// The number in `text` between `before` and `after` (both exact).
fn number_between(text: &str, before: &str, after: &str) -> Option<u64> {
    text.strip_prefix(before)?.strip_suffix(after)?.parse().ok()
}

/// `$0` of the drain hook's script: the name `sh` puts in front of its
/// messages about the drain command.
pub const DRAIN_NAME: &str = "gracehook-drain";

/// The script of a hook with a drain command ([`Hook::script`]); the command
/// itself is its first argument ([`Hook::argv`]).
pub fn drain_script(delay: impl Display, timeout: impl Display) -> String {
    format!("trap 'exit 0' TERM; sleep {delay}; sh -c \"$1\" & sleep {timeout} & wait $!")
}

/// The script of a hook without one.
pub fn sleep_script(delay: impl Display) -> String {
    format!("sleep {delay}")
}

/// [`Hook::describe`] of a hook with a drain command.
pub fn drain_description(
    delay: impl Display,
    command: impl Display,
    timeout: impl Display,
) -> String {
    format!("sleep {delay}s; {command}; sleep {timeout}s")
}

/// The characters of a command that a warning cannot carry (the API server
/// drops a warning with a control character), written as escapes:
/// `PRINTABLE` pairs each with its escape, for CEL to do the same.
pub const PRINTABLE: [(char, &str); 3] = [('\n', "\\n"), ('\r', "\\r"), ('\t', "\\t")];

/// `command` with [`PRINTABLE`]'s characters escaped.
pub fn printable(command: &str) -> String {
    PRINTABLE
        .iter()
        .fold(command.to_string(), |text, (c, escape)| {
            text.replace(*c, escape)
        })
}

/// [`Hook::describe`] of a hook without one.
pub fn sleep_description(delay: impl Display) -> String {
    format!("sleep {delay}s")
}

/// What happens to one eligible container's `preStop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// gracehook adds this hook.
    Add(Hook),
    /// The container already has exactly the hook gracehook would add (a second
    /// pass, or a user who wrote the same thing).
    AlreadyApplied(Hook),
    /// The container has a hook of its own, which is never touched.
    KeepExisting,
    /// No delay and no command: nothing to run.
    NoHook,
}

impl HookAction {
    /// Compares the container's own hook, if any, with the one gracehook wants.
    pub fn decide(existing: Option<&LifecycleHandler>, wanted: Option<Hook>) -> HookAction {
        match (existing, wanted) {
            (Some(existing), Some(hook)) if *existing == hook.handler() => {
                HookAction::AlreadyApplied(hook)
            }
            (Some(_), _) => HookAction::KeepExisting,
            (None, Some(hook)) => HookAction::Add(hook),
            (None, None) => HookAction::NoHook,
        }
    }

    /// gracehook's hook on the container once the plan is applied.
    pub fn hook(&self) -> Option<&Hook> {
        match self {
            HookAction::Add(hook) | HookAction::AlreadyApplied(hook) => Some(hook),
            HookAction::KeepExisting | HookAction::NoHook => None,
        }
    }

    /// The word recorded per container in `gracehook.io/status`.
    pub fn status_kind(&self) -> &'static str {
        match self {
            HookAction::Add(h) | HookAction::AlreadyApplied(h) => h.kind(),
            HookAction::KeepExisting => "kept",
            HookAction::NoHook => "none",
        }
    }
}
