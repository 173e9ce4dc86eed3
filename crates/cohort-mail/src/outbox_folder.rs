//! The embedded default transport: each message written as an `.eml` file
//! into a folder (`[mail] outbox_dir`), so that `cohort serve` sends mail
//! with nothing else installed and a merchant can open what would have
//! gone out. A file appears whole or not at all (written aside, synced,
//! renamed), and is named by the message id, so a retried delivery of the
//! same message finds it there and writes nothing twice.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::message::WireMessage;

/// A folder messages are delivered into.
#[derive(Debug, Clone)]
pub struct OutboxFolder {
    dir: PathBuf,
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderDelivery {
    Written(PathBuf),
    /// The message was delivered before (a retry after a crash).
    AlreadyThere(PathBuf),
}

impl OutboxFolder {
    /// The folder, created when missing.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a message id is delivered to: the id with anything but
    /// letters, digits, `-`, `_` and `.` replaced.
    pub fn path_of(&self, message_id: &str) -> PathBuf {
        let name: String = message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{name}.eml"))
    }

    /// Writes the message (blocking IO: call from a blocking task).
    pub fn deliver(
        &self,
        message_id: &str,
        message: &WireMessage,
    ) -> std::io::Result<FolderDelivery> {
        let path = self.path_of(message_id);
        if path.exists() {
            return Ok(FolderDelivery::AlreadyThere(path));
        }
        let mut aside = tempfile::NamedTempFile::new_in(&self.dir)?;
        // The SMTP envelope, as an MTA's delivery would record it.
        write!(
            aside,
            "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
            message.mail_from, message.rcpt_to
        )?;
        aside.write_all(&message.bytes)?;
        aside.as_file().sync_all()?;
        match aside.persist_noclobber(&path) {
            Ok(_) => {}
            // Another delivery of the same message won the race.
            Err(e) if path.exists() => {
                drop(e);
                return Ok(FolderDelivery::AlreadyThere(path));
            }
            Err(e) => return Err(e.error),
        }
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(FolderDelivery::Written(path))
    }
}
