import Foundation
import Testing
@testable import Pipeline

/// sd_notify against a real datagram socket bound by the test.
@Suite struct SystemdNotifierTests {
    /// A bound AF_UNIX datagram socket (path, or abstract when the name starts with `@`).
    final class Listener {
        let fd: Int32
        let name: String
        init(_ name: String) throws {
            self.name = name
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            var bytes = Array(name.utf8)
            let abstract = bytes.first == UInt8(ascii: "@")
            if abstract { bytes[0] = 0 }
            withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: bytes) }
            let len = MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1)
            let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(len)) } }
            guard r == 0 else { throw FileError(operation: "bind", path: name, code: errno) }
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        }
        deinit {
            close(fd)
            if !name.hasPrefix("@") { unlink(name) }
        }
        func receive() -> String? {
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buf, 4096, 0)
            return n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : nil
        }
        /// Nothing more arrives (non-blocking check).
        func isEmpty() -> Bool {
            var buf = [UInt8](repeating: 0, count: 16)
            return recv(fd, &buf, 16, Int32(MSG_DONTWAIT)) < 0
        }
    }

    @Test func pathSocketGetsReadyStatusAndStopping() throws {
        let dir = TempRoot("notify")
        let listener = try Listener(dir.path + "/notify.sock")
        let n = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name])
        #expect(n.isEnabled)
        n.ready(status: "watching")
        #expect(listener.receive() == "READY=1\nSTATUS=watching")
        n.status("job a: step 1/2", force: true)
        #expect(listener.receive() == "STATUS=job a: step 1/2")
        n.stopping(status: "bye")
        #expect(listener.receive() == "STOPPING=1\nSTATUS=bye")
    }

    @Test func abstractNamespaceSocket() throws {
        let listener = try Listener("@learngene-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let n = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name])
        n.ready(status: "x")
        #expect(listener.receive() == "READY=1\nSTATUS=x")
    }

    @Test func watchdogPingsAtHalfTheInterval() throws {
        let dir = TempRoot("watchdog")
        let listener = try Listener(dir.path + "/n.sock")
        // WATCHDOG_USEC 2 h: the first heartbeat pings, the next ones (within an hour) do not.
        let n = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name, "WATCHDOG_USEC": "7200000000"])
        #expect(n.watchdogInterval == 3600)
        n.heartbeat()
        #expect(listener.receive() == "WATCHDOG=1")
        n.heartbeat()
        n.heartbeat()
        #expect(listener.isEmpty())
        // Another process's watchdog: none for us.
        let other = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"])
        #expect(other.watchdogInterval == nil)
    }

    @Test func withoutNotifySocketNothingIsSent() {
        let n = SystemdNotifier(environment: [:])
        #expect(!n.isEnabled)
        #expect(n.send("READY=1") == false)
        n.heartbeat()
        #expect(n.watchdogInterval == nil)
    }
}
