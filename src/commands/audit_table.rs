//! The `gracehook audit` report as an aligned table, the verdict coloured on
//! a terminal, printed a chunk at a time.

use gracehook::cluster::risks::Finding;

fn row(f: &Finding) -> [String; 7] {
    let pre_stop = f
        .containers
        .iter()
        .map(|c| format!("{}={}", c.name, c.pre_stop))
        .collect::<Vec<_>>()
        .join(", ");
    let risk = if f.at_risk() {
        f.risks.join("; ")
    } else {
        "ok".to_string()
    };
    [
        f.namespace.clone(),
        format!("{}/{}", f.kind, f.name),
        f.mode.clone(),
        format!("{}s", f.grace),
        pre_stop,
        f.would_set.clone(),
        risk,
    ]
}

/// The rows of `findings`, aligned among themselves (and with the header,
/// when it is printed): a long report is printed a chunk at a time, as
/// `kubectl get` prints its chunks, so it need not be held whole.
pub(super) fn table_chunk(findings: &[Finding], colour: bool, with_header: bool) -> String {
    let header = [
        "NAMESPACE",
        "WORKLOAD",
        "MODE",
        "GRACE",
        "PRESTOP",
        "WOULD SET",
        "RISK",
    ];
    let rows: Vec<[String; 7]> = findings.iter().map(row).collect();
    let mut widths = if with_header {
        header.map(str::len)
    } else {
        [0; 7]
    };
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], risky: Option<bool>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let last = i == cells.len() - 1;
            let padded = if last {
                cell.clone()
            } else {
                format!("{cell:<w$}  ")
            };
            match (last, risky, colour) {
                (true, Some(true), true) => text.push_str(&format!("\x1b[31m{padded}\x1b[0m")),
                (true, Some(false), true) => text.push_str(&format!("\x1b[32m{padded}\x1b[0m")),
                _ => text.push_str(&padded),
            }
        }
        text.trim_end().to_string() + "\n"
    };
    if with_header {
        out.push_str(&line(&header.map(String::from), None));
    }
    for (row, f) in rows.iter().zip(findings) {
        out.push_str(&line(row, Some(f.at_risk())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use gracehook::cluster::risks::ContainerState;

    fn finding(name: &str, risks: &[&str]) -> Finding {
        Finding {
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: name.into(),
            mode: "audit".into(),
            grace: 30,
            containers: vec![ContainerState {
                name: "web".into(),
                pre_stop: "none".into(),
            }],
            would_set: "nothing".into(),
            risks: risks.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn table(findings: &[Finding], colour: bool) -> String {
        table_chunk(findings, colour, true)
    }

    #[test]
    fn aligned_with_the_verdict_coloured_on_a_terminal() {
        let findings = vec![
            finding("w", &["web: no preStop delay"]),
            finding("a-longer-name", &[]),
        ];
        let text = table(&findings, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAMESPACE  WORKLOAD"), "{text}");
        assert_eq!(lines.len(), 3);
        // Aligned: the MODE column starts at the same offset on every line.
        let at = lines[0].find("MODE").unwrap();
        assert!(
            lines[1..].iter().all(|l| &l[at..at + 5] == "audit"),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "no colour off a terminal");
        let coloured = table(&findings, true);
        assert!(coloured.contains("\x1b[31m"), "{coloured}");
        assert!(coloured.contains("\x1b[32m"), "{coloured}");
        // A chunk without the header is aligned among its own rows.
        assert_eq!(table_chunk(&findings, false, false).lines().count(), 2);
    }
}
