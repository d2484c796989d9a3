//! Writing a file under a temporary name beside its final path, renamed into place only when
//! complete: a failed or interrupted run leaves neither a partial file nor a temporary one.

use crate::on_signal;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A file being written under a temporary name beside its final path; removed on drop unless
/// committed.
pub(crate) struct TempFile {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
    slot: Option<usize>,
}

impl TempFile {
    /// Create the temporary file for `dest` (`what` names it in messages: "OUT",
    /// "--summary-json"), registered for removal on SIGINT/SIGTERM/SIGHUP. The error is the
    /// message of a usage error: `dest` is not a file name, is a directory, or its directory
    /// does not exist or is not writable.
    pub(crate) fn create(dest: &Path, what: &str) -> Result<(TempFile, File), String> {
        let name = match dest.file_name() {
            Some(n) => n.to_string_lossy().into_owned(),
            None => return Err(format!("{what} '{}' is not a file name", dest.display())),
        };
        if dest.is_dir() {
            return Err(format!("{what} '{}' is a directory", dest.display()));
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| {
                format!(
                    "cannot create a file beside {what} '{}' (does its directory exist and is it writable?): {e}",
                    dest.display()
                )
            })?;
        let slot = on_signal::remove_on_signal(&tmp);
        Ok((
            TempFile {
                tmp,
                dest: dest.to_path_buf(),
                committed: false,
                slot,
            },
            file,
        ))
    }

    /// Rename the file to its final path.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        fs::rename(&self.tmp, &self.dest)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
        if let Some(slot) = self.slot {
            on_signal::forget(slot);
        }
    }
}
