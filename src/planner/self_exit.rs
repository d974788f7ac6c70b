//! Drain commands known to make the server end by itself once its requests
//! are done (`docs/plan.md`, "Servers that exit by themselves"): after
//! them SIGTERM may never be needed, and when the container's PID 1 exits
//! the kernel kills the preStop hook that still waits, so the kubelet
//! records a `FailedPreStopHook` for a drain that worked.

/// What the plan notes (a warning in enforce mode, a note in `-o explain`).
/// It names no command: a warning cannot carry every character one may hold.
pub fn note(container: &str) -> String {
    format!("container {container}{NOTE}")
}

/// [`note`] after the container's name; `policy` writes the same words in CEL.
pub const NOTE: &str = "'s drain command makes the server exit by itself once its requests are done: SIGTERM may never be needed, and the kubelet may record FailedPreStopHook (exit 137) for a drain that worked";

/// The RE2 form of [`exits_by_itself`], for the admission policies' CEL
/// `matches()`. RE2's `\s` is the ASCII whitespace that
/// `split_ascii_whitespace` splits on.
pub const SELF_EXITING: &str = r"^\s*(\S*/)?(nginx(\s+\S+)*\s+-s\s+quit|(apachectl|apache2ctl|apache2|httpd)(\s+-k)?\s+graceful-stop|kill\s+(-s\s+|-)(SIG)?(QUIT|WINCH)\s+1|kill\s+-(3|28)\s+1)\s*$";

/// Whether `command` is one of the known forms: `nginx [options] -s quit`;
/// `apachectl`, `apache2ctl`, `apache2` or `httpd` with `[-k] graceful-stop`;
/// `kill` sending SIGQUIT or SIGWINCH (Apache's graceful stop) to PID 1. The
/// program may be given by its path.
pub fn exits_by_itself(command: &str) -> bool {
    let words: Vec<&str> = command.split_ascii_whitespace().collect();
    let Some((first, rest)) = words.split_first() else {
        return false;
    };
    let program = first.rsplit('/').next().unwrap_or(first);
    match program {
        "nginx" => rest.len() >= 2 && rest.ends_with(&["-s", "quit"]),
        "apachectl" | "apache2ctl" | "apache2" | "httpd" => {
            matches!(rest, ["-k", "graceful-stop"] | ["graceful-stop"])
        }
        "kill" => match rest {
            ["-s", signal, "1"] => graceful_signal(signal),
            [flag, "1"] => flag
                .strip_prefix('-')
                .is_some_and(|s| graceful_signal(s) || s == "3" || s == "28"),
            _ => false,
        },
        _ => false,
    }
}

fn graceful_signal(name: &str) -> bool {
    matches!(name.strip_prefix("SIG").unwrap_or(name), "QUIT" | "WINCH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_forms_and_only_those() {
        for yes in [
            "nginx -s quit",
            "/usr/sbin/nginx -c /etc/nginx/nginx.conf -s quit",
            "apachectl -k graceful-stop",
            "apache2ctl graceful-stop",
            " kill -QUIT 1 ",
            "kill -s SIGWINCH 1",
            "kill -3 1",
        ] {
            assert!(exits_by_itself(yes), "{yes}");
        }
        for no in [
            "nginx -s reload",
            "xnginx -s quit",
            "apachectl -k graceful",
            "kill -QUIT 7",
            "kill -TERM 1",
            "kill -s 1",
            "sleep 5",
            "",
        ] {
            assert!(!exits_by_itself(no), "{no}");
        }
    }
}
