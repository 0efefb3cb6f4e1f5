//! Is the game running? The game rewrites an account's SavedVariables when that account logs
//! out, so a merge made while it is logged in is overwritten.

use svsync::fsio::accounts::Account;

/// Names of the game's processes (Windows, macOS, and Wine on Linux).
const GAME_PROCESSES: &[&str] = &[
    "wow.exe",
    "wowclassic.exe",
    "wowt.exe",
    "wowb.exe",
    "world of warcraft",
    "world of warcraft classic",
];

fn is_game(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    GAME_PROCESSES
        .iter()
        .any(|g| name == *g || name.starts_with(&format!("{g} ")))
}

/// Whether a game process appears to be running (best effort; false when it cannot tell).
pub fn game_running() -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        entries
            .flatten()
            .any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| is_game(&c)))
    }
    #[cfg(windows)]
    {
        std::process::Command::new("tasklist")
            .args(["/FO", "CSV", "/NH"])
            .output()
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.split(',').next())
                    .any(|n| is_game(n.trim_matches('"')))
            })
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        std::process::Command::new("ps")
            .args(["-axco", "comm"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(is_game))
    }
}

pub fn warn_if_running(to: &Account) {
    if game_running() {
        eprintln!(
            "svsync: warning: World of Warcraft appears to be running. If {} is logged in, the \
             game will overwrite its GuildHelper.lua when it logs out and this merge will be \
             lost; log that account out first, or leave `svsync watch` running, which merges \
             again after the game saves.",
            to.name
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn recognizes_game_process_names() {
        assert!(super::is_game("Wow.exe\n"));
        assert!(super::is_game("World of Warcraft"));
        assert!(!super::is_game("bash"));
    }
}
