//! minisign: keys a facility holds, signatures beside the files they sign.
