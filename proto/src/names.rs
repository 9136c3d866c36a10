//! The shapes of every name and free string that crosses the wire into a file, a request
//! line or the kernel: the one set of rules the definition's validator and the agent's
//! wire decoder share.
//!
//! Why strict charsets rather than escaping: the strings end up in places with no escaping
//! of their own. A VRRP instance name, interface or VIP label is pasted into
//! `keepalived.conf`, where a newline starts a new statement (a `notify` or `vrrp_script`
//! keepalived would run as root) and `#`, `!`, `"`, `{` and `}` change how the rest is read.
//! A check's path and Host go into an HTTP request, where CR/LF would add headers or a
//! second request. A scheduler name makes the kernel load `ip_vs_<name>`. So each is held
//! to the few characters its honest values use, and anything else is refused with the field
//! named, by whoever signed the request.
//!
//! Each function says why a value does not fit (`Some(reason)`), or `None` when it does.

/// Longest name of a cluster, LAN, node, service or VRRP instance: one DNS label.
pub const MAX_NAME: usize = 63;

/// Longest check script name.
pub const MAX_SCRIPT: usize = 64;

/// Longest argument of a check script or hook, and most arguments.
pub const MAX_ARGUMENT: usize = 1024;
/// Most arguments of a check script or hook (its name included).
pub const MAX_ARGUMENTS: usize = 32;

/// Longest HTTP path a check may request.
pub const MAX_HTTP_PATH: usize = 2048;

/// `name` quoted for a message, control characters escaped and cut at 40 characters, so
/// the message itself stays one readable line whatever the name holds.
pub fn shown(name: &str) -> String {
    let cut: String = name.chars().take(40).collect::<String>().escape_debug().to_string();
    if name.chars().count() > 40 { format!("`{cut}…`") } else { format!("`{cut}`") }
}

/// Why `name` is not a DNS label (lowercase letters, digits and `-`, not at either end,
/// 1..=63 bytes).
pub fn dns_label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > MAX_NAME {
        return Some(format!("{} is {} bytes long (at most {MAX_NAME})", shown(name), name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Some(format!(
            "{} contains {:?}: only lowercase letters, digits and `-` are allowed",
            shown(name),
            c
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some(format!("{} starts or ends with `-`", shown(name)));
    }
    None
}

/// A character of an interface name: what `ip link` names use (`eth0`, `ens3`,
/// `eth0.100`, `bond-lan`, `veth_a`). The kernel allows more (anything printable but `/`
/// and `:`), but those names would have to be quoted in `keepalived.conf`.
fn ifname_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Why `name` cannot be a Linux interface name as this tool writes it (1..=15 bytes of
/// letters, digits, `_`, `.` and `-`; not `.` or `..`).
pub fn ifname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > 15 {
        return Some(format!("{} is longer than the kernel's 15 bytes", shown(name)));
    }
    if name == "." || name == ".." || !name.bytes().all(ifname_char) {
        return Some(format!(
            "{} is not an interface name (letters, digits, `_`, `.` and `-` only)",
            shown(name)
        ));
    }
    None
}

/// Why `label` cannot be an address label (`ip addr add … label eth0:0`): the interface's
/// name, `:` and a suffix of interface-name characters, 15 bytes in all.
pub fn label_problem(label: &str) -> Option<String> {
    let Some((dev, suffix)) = label.split_once(':') else {
        return Some(format!("{} is not `<interface>:<suffix>`", shown(label)));
    };
    if label.len() > 15 {
        return Some(format!("{} is longer than the kernel's 15 bytes", shown(label)));
    }
    if ifname_problem(dev).is_some() || suffix.is_empty() || !suffix.bytes().all(ifname_char) {
        return Some(format!(
            "{} is not `<interface>:<suffix>` of letters, digits, `_`, `.` and `-`",
            shown(label)
        ));
    }
    None
}

/// Why `name` cannot name a check script or notify hook in the node's script directory:
/// a file name of letters, digits, `_`, `.` and `-` that does not start with `.` or `-`
/// (no `/`, so it cannot leave the directory; no leading dot, so never `..`).
pub fn script_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > MAX_SCRIPT {
        return Some(format!("{} is longer than {MAX_SCRIPT} bytes", shown(name)));
    }
    if name.contains('/') {
        return Some(format!(
            "{} is a path: name a script of the node's script directory (e.g. `check-app`), which the node's owner installs",
            shown(name)
        ));
    }
    if name.starts_with(['.', '-']) || !name.bytes().all(ifname_char) {
        return Some(format!(
            "{} is not a script name (letters, digits, `_`, `.` and `-`, not first `.` or `-`)",
            shown(name)
        ));
    }
    None
}

/// Why `argv` (a script name, then its arguments) cannot be run: the name must fit
/// [`script_problem`]; an argument holds no control character (it is an argument, never a
/// line of anything) and is at most [`MAX_ARGUMENT`] bytes.
pub fn command_problem(argv: &[String]) -> Option<String> {
    let Some((name, args)) = argv.split_first() else {
        return Some("is empty: name a script, then its arguments".into());
    };
    if argv.len() > MAX_ARGUMENTS {
        return Some(format!("has {} words (at most {MAX_ARGUMENTS})", argv.len()));
    }
    if let Some(p) = script_problem(name) {
        return Some(format!("script {p}"));
    }
    for (i, a) in args.iter().enumerate() {
        if let Some(p) = text_problem(a, MAX_ARGUMENT) {
            return Some(format!("argument {} {p}", i + 1));
        }
    }
    None
}

/// Why `s` cannot be free text of at most `max` bytes: a control character (CR, LF, NUL,
/// ESC, …) would start a new line in a log or a terminal escape on the admin's screen.
pub fn text_problem(s: &str, max: usize) -> Option<String> {
    if s.len() > max {
        return Some(format!("is {} bytes long (at most {max})", s.len()));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Some(format!("{} holds the control character {:?}", shown(s), c));
    }
    None
}

/// Why `path` cannot be the target of an HTTP request line: it starts with `/` and is
/// visible ASCII only (no space, CR or LF, which would end the request line; percent-encode
/// anything else), at most [`MAX_HTTP_PATH`] bytes.
pub fn http_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("does not start with /".into());
    }
    if path.len() > MAX_HTTP_PATH {
        return Some(format!("is {} bytes long (at most {MAX_HTTP_PATH})", path.len()));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Some(format!(
            "{} holds a space, a control or a non-ASCII character (percent-encode it)",
            shown(path)
        ));
    }
    None
}

/// Why `host` cannot be an HTTP Host header or TLS server name: a DNS name or an address,
/// with an optional port (letters, digits, `.`, `-`, `_`, `:`, `[` and `]`), at most 255
/// bytes.
pub fn http_host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("is empty".into());
    }
    if host.len() > 255 {
        return Some(format!("is {} bytes long (at most 255)", host.len()));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']'))
    {
        return Some(format!("{} is not a host name or address", shown(host)));
    }
    None
}

/// Why `name` is not an IPVS scheduler of the mainline kernel ([`crate::spec::SCHEDULERS`]):
/// any other name makes the kernel try to load a module `ip_vs_<name>`.
pub fn scheduler_problem(name: &str) -> Option<String> {
    if crate::spec::SCHEDULERS.contains(&name) {
        None
    } else {
        Some(format!("{} is not a scheduler (one of: {})", shown(name), crate::spec::SCHEDULERS.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_keepalived_conf_or_a_request_line_would_misread_is_refused() {
        for bad in ["eth0\n", "eth0}", "eth0 x", "eth0#", "a\"b", "", ".", "..", "toolonginterface0"] {
            assert!(ifname_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["eth0", "ens3", "eth0.100", "bond-lan", "veth_a"] {
            assert_eq!(ifname_problem(good), None, "{good}");
        }
        assert_eq!(label_problem("eth1:0"), None);
        for bad in ["eth1:0\nvrrp_script x {", "eth1", "eth1:", "eth1:a b", ":0", "eth1:0123456789ab"] {
            assert!(label_problem(bad).is_some(), "{bad:?}");
        }
        assert!(http_path_problem("/x HTTP/1.1\r\nHost: evil").is_some());
        assert!(http_path_problem("/a b").is_some());
        assert_eq!(http_path_problem("/health?x=%20"), None);
        assert!(http_host_problem("a\r\nX-Evil: 1").is_some());
        assert_eq!(http_host_problem("[2001:db8::1]:8443"), None);
        assert_eq!(http_host_problem("www.example.org"), None);
        assert!(scheduler_problem("../../evil").is_some());
        assert_eq!(scheduler_problem("wrr"), None);
    }

    #[test]
    fn a_script_is_a_name_in_the_script_directory_never_a_path() {
        assert_eq!(command_problem(&["check-app".into(), "--quick".into()]), None);
        for bad in ["/bin/sh", "../bin/sh", ".hidden", "-x", "a/b", "", "a b"] {
            assert!(command_problem(&[bad.into()]).is_some(), "{bad:?}");
        }
        assert!(command_problem(&[]).is_some());
        let e = command_problem(&["check".into(), "ok".into(), "two\nlines".into()]).unwrap();
        assert!(e.starts_with("argument 2 "), "{e}");
        assert!(command_problem(&vec!["c".to_string(); 33]).is_some());
    }
}
