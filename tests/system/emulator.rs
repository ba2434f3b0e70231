//! (emulator flow: pending)
