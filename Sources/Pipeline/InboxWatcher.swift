import Foundation

/// inotify on the spool folders, used only to wake the scanner early: the folder listing stays
/// the source of truth (events can be lost; IN_Q_OVERFLOW means "rescan everything"), and the
/// daemon rescans periodically anyway. Watches are not recursive; dataset contents are judged
/// by their modification times.
///
/// It also remembers when a manifest was last closed after writing (IN_CLOSE_WRITE) or renamed
/// in (IN_MOVED_TO): such a file is complete, even if its modification time is recent.
public final class InboxWatcher: @unchecked Sendable {
    let fd: Int32
    let layout: SpoolLayout
    private var watches: [Int32: String] = [:]
    /// Manifest or dataset name → wall time of its last close-after-write or rename-in.
    public private(set) var completedAt: [String: Double] = [:]
    /// Set when the kernel queue overflowed (events lost).
    public private(set) var overflowed = false

    /// nil when inotify is unavailable (then the daemon polls).
    public init?(layout: SpoolLayout) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.layout = layout
        let fileEvents = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM)
        for (dir, mask) in [(layout.jobs, fileEvents), (layout.datasets, fileEvents),
                            (layout.outbox, UInt32(IN_MOVED_TO | IN_CREATE)), (layout.failed, UInt32(IN_MOVED_TO | IN_CREATE)),
                            (layout.claimed, UInt32(IN_DELETE | IN_MOVED_FROM | IN_CREATE))] {
            let wd = inotify_add_watch(fd, dir, mask)
            if wd >= 0 { watches[wd] = dir }
        }
        if watches.isEmpty {
            close(fd)
            return nil
        }
    }

    deinit { close(fd) }

    /// Waits until something happens in the watched folders, `stop` is requested, or `timeout`
    /// seconds pass. Returns true if woken by a folder event.
    public func wait(timeout: Double, stop: StopSignal) -> Bool {
        InboxWatcher.poll(fds: [fd, stop.wakeRead], timeout: timeout).first == true ? drain() : false
    }

    /// Sleeps until `stop` or `timeout` (no inotify).
    public static func sleep(timeout: Double, stop: StopSignal) {
        _ = poll(fds: [stop.wakeRead], timeout: timeout)
    }

    static func poll(fds: [Int32], timeout: Double) -> [Bool] {
        var pfds = fds.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let ms = Int32(max(0, min(timeout, 3600)) * 1000)
        let r = Glibc.poll(&pfds, nfds_t(pfds.count), ms)
        guard r > 0 else { return fds.map { _ in false } }
        return fds.map { fd in pfds.first { $0.fd == fd }.map { $0.revents & Int16(POLLIN) != 0 } ?? false }
    }

    /// Reads all pending events; true if there were any.
    func drain() -> Bool {
        let size = 65536
        let buf = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<inotify_event>.alignment)
        defer { buf.deallocate() }
        var any = false
        let now = Date().timeIntervalSince1970
        while true {
            let n = read(fd, buf, size)
            if n <= 0 { break }
            any = true
            var off = 0
            while off + MemoryLayout<inotify_event>.size <= n {
                let ev = buf.load(fromByteOffset: off, as: inotify_event.self)
                // The name is a NUL-padded char[len] right after the fixed header.
                let name = ev.len > 0
                    ? String(cString: (buf + off + MemoryLayout<inotify_event>.size).assumingMemoryBound(to: CChar.self)) : ""
                if ev.mask & UInt32(IN_Q_OVERFLOW) != 0 { overflowed = true }
                if ev.mask & UInt32(IN_CLOSE_WRITE | IN_MOVED_TO) != 0, !name.isEmpty, let dir = watches[ev.wd],
                   dir == layout.jobs || dir == layout.datasets {
                    completedAt[name] = now
                }
                off += MemoryLayout<inotify_event>.size + Int(ev.len)
            }
        }
        return any
    }

    /// Clears the overflow flag after the full rescan it asked for.
    public func acknowledgeOverflow() { overflowed = false }

    /// Forgets names no longer present (keeps the table small).
    public func forget(except names: Set<String>) {
        completedAt = completedAt.filter { names.contains($0.key) }
    }
}
