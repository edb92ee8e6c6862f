import CZlib

/// The zip layout of `torch.save` (torch ≥ 1.6).
///
/// torch writes its archive with miniz: every entry *stored* (no compression), data aligned
/// to 64 bytes through padding in the local header's extra field, ZIP64 records once the
/// archive passes 4 GiB. So the reader is small: find the end-of-central-directory record
/// (and the ZIP64 one when present), walk the central directory, and take each entry's
/// bytes in place after its local header. Compressed, encrypted or multi-disk archives are
/// not torch's and are refused; each entry's CRC-32 is checked, so a damaged download is
/// caught here rather than as strange weights later.
extension TorchCheckpoint {
    struct ZipEntry {
        var name: String
        var start: Int
        var size: Int
    }

    static func parseZip(_ raw: UnsafeRawBufferPointer, name: String) throws(DataFileError) -> Contents {
        let entries = try zipEntries(raw, name: name)
        // The record folder: `archive/` in current torch, the file's stem in older ones.
        let pickles = entries.keys.filter { $0.hasSuffix("/data.pkl") && $0.dropLast("/data.pkl".count).firstIndex(of: "/") == nil }
        guard pickles.count == 1, let pkl = pickles.first, let pickle = entries[pkl] else {
            throw DataFileError(file: name, reason: pickles.isEmpty
                ? "is a zip archive without a <folder>/data.pkl entry, so not a torch.save file"
                : "has several data.pkl records (\(pickles.sorted().joined(separator: ", ")))",
                hint: "give a file written by torch.save")
        }
        let prefix = String(pkl.dropLast("data.pkl".count))
        if let order = entries[prefix + "byteorder"] {
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: raw[order.start..<(order.start + order.size)]), as: UTF8.self)
            guard text == "little" else {
                throw DataFileError(file: name, location: "zip entry \(prefix)byteorder", reason: "says the data is \(text)-endian",
                                    hint: "only little-endian checkpoints are read; re-save it on a little-endian machine")
            }
        }
        let pickleBytes = UnsafeRawBufferPointer(rebasing: raw[pickle.start..<(pickle.start + pickle.size)])
        var storages: [String: StorageBytes] = [:]
        do throws(Pickle.Failure) {
            let (state, end) = try Pickle.load(pickleBytes, from: 0, base: pickle.start) { (pid: Pickle.Value, at: Int) throws(Pickle.Failure) -> Pickle.Value in
                let s = try storageRef(pid, at: at, legacy: false)
                let entryName = prefix + "data/" + s.key
                guard let e = entries[entryName] else {
                    throw Pickle.Failure(offset: at, reason: "storage \(s.key) has no zip entry \(entryName) (truncated or damaged file)",
                                         hint: "copy the checkpoint again")
                }
                let (need, overflow) = s.numel.multipliedReportingOverflow(by: s.dtype.size)
                guard !overflow, e.size >= need else {
                    throw Pickle.Failure(offset: at, reason: "storage \(s.key) declares \(s.numel) × \(s.dtype.size) bytes but zip entry \(entryName) holds \(e.size)")
                }
                if let old = storages[s.key], old.dtype != s.dtype || old.numel != s.numel {
                    throw Pickle.Failure(offset: at, reason: "storage \(s.key) is declared twice with different types or sizes")
                }
                storages[s.key] = StorageBytes(start: e.start, numel: s.numel, dtype: s.dtype, place: "zip entry \(entryName)")
                return .storage(s)
            }
            guard end == pickle.size else {
                throw Pickle.Failure(offset: pickle.start + end, reason: "\(pickle.size - end) bytes follow the pickle's STOP in \(pkl)")
            }
            return try contents(of: state, layout: .zip, storages: storages, raw: raw, name: name)
        } catch {
            throw DataFileError(file: name, location: "byte \(error.offset) (in \(pkl))", reason: error.reason, hint: error.hint)
        }
    }

    /// Whether the reader uses an entry: `<folder>/data.pkl`, `<folder>/data/<key>`,
    /// `<folder>/byteorder` (not TorchScript's `code/`, `constants.pkl` or debug files).
    static func isTensorData(_ entry: String) -> Bool {
        let parts = entry.split(separator: "/", omittingEmptySubsequences: false)
        return (parts.count == 2 && (parts[1] == "data.pkl" || parts[1] == "byteorder")) || (parts.count == 3 && parts[1] == "data")
    }

    /// The archive's stored entries by name, each located and CRC-checked (compressed entries
    /// that `isTensorData` does not need are left out).
    static func zipEntries(_ raw: UnsafeRawBufferPointer, name: String) throws(DataFileError) -> [String: ZipEntry] {
        func fail(_ at: Int?, _ reason: String, _ hint: String? = "the zip archive is damaged or truncated; copy it again") -> DataFileError {
            DataFileError(file: name, location: at.map { "byte \($0)" }, reason: reason, hint: hint)
        }
        func u16(_ p: Int) -> Int { Int(raw[p]) | Int(raw[p + 1]) << 8 }
        func u32(_ p: Int) -> Int { u16(p) | u16(p + 2) << 16 }
        func u64(_ p: Int) -> UInt64 { UInt64(u32(p)) | UInt64(u32(p + 4)) << 32 }
        func int64(_ p: Int, _ what: String) throws(DataFileError) -> Int {
            let v = u64(p)
            guard v <= UInt64(raw.count) else { throw fail(p, "\(what) \(v) is beyond the \(raw.count)-byte file") }
            return Int(v)
        }

        // End of central directory: 22 bytes plus a comment of at most 65535.
        var eocd = -1
        var p = raw.count - 22
        while p >= max(0, raw.count - 22 - 65535) {
            if u32(p) == 0x0605_4B50 { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw fail(nil, "is a zip archive without an end-of-central-directory record (truncated file)") }
        guard u16(eocd + 4) == 0 || u16(eocd + 4) == 0xFFFF, u16(eocd + 6) == 0 || u16(eocd + 6) == 0xFFFF else {
            throw fail(eocd, "is a multi-disk zip archive", "torch never writes those")
        }
        var count = u16(eocd + 10), cdSize = u32(eocd + 12), cdOffset = u32(eocd + 16)
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: a locator just before the EOCD points at the ZIP64 EOCD record.
            let loc = eocd - 20
            guard loc >= 0, u32(loc) == 0x0706_4B50 else { throw fail(eocd, "needs ZIP64 records but has no ZIP64 locator") }
            let z = try int64(loc + 8, "ZIP64 record offset")
            guard z <= raw.count - 56, u32(z) == 0x0606_4B50 else { throw fail(loc, "the ZIP64 end record is not where its locator says") }
            count = try int64(z + 32, "entry count")
            cdSize = try int64(z + 40, "central directory size")
            cdOffset = try int64(z + 48, "central directory offset")
        }
        guard cdOffset <= raw.count, cdSize <= raw.count - cdOffset else {
            throw fail(eocd, "the central directory (\(cdSize) bytes at \(cdOffset)) lies outside the \(raw.count)-byte file")
        }
        guard count <= cdSize / 46 else { throw fail(eocd, "claims \(count) entries, more than its central directory can hold") }

        var entries: [String: ZipEntry] = [:]
        p = cdOffset
        let cdEnd = cdOffset + cdSize
        for _ in 0..<count {
            guard p + 46 <= cdEnd, u32(p) == 0x0201_4B50 else { throw fail(p, "a central directory entry is missing or damaged") }
            let flags = u16(p + 8), method = u16(p + 10), crc = UInt32(u32(p + 16))
            var csize = u32(p + 20), usize = u32(p + 24)
            let nameLen = u16(p + 28), extraLen = u16(p + 30), commentLen = u16(p + 32)
            var local = u32(p + 42)
            guard p + 46 + nameLen + extraLen + commentLen <= cdEnd else { throw fail(p, "a central directory entry runs past the directory's end") }
            let entryName = String(decoding: UnsafeRawBufferPointer(rebasing: raw[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self)
            // ZIP64 extra field: the 64-bit values of whichever fields are 0xFFFFFFFF, in order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = u16(e), len = u16(e + 2)
                guard e + 4 + len <= extraEnd else { break }
                if id == 0x0001 {
                    var q = e + 4
                    if usize == 0xFFFF_FFFF, q + 8 <= e + 4 + len { usize = try int64(q, "entry size"); q += 8 }
                    if csize == 0xFFFF_FFFF, q + 8 <= e + 4 + len { csize = try int64(q, "entry size"); q += 8 }
                    if local == 0xFFFF_FFFF, q + 8 <= e + 4 + len { local = try int64(q, "entry offset"); q += 8 }
                }
                e += 4 + len
            }
            guard flags & 1 == 0 else { throw fail(p, "entry \(entryName) is encrypted", "torch never encrypts; this is not a torch.save file") }
            let needed = isTensorData(entryName)
            guard method == 0, csize == usize else {
                // torch.jit.save deflates its `code/` and debug entries; they are never read,
                // so they are only listed. The pickle and storages must be stored.
                if !needed {
                    p += 46 + nameLen + extraLen + commentLen
                    continue
                }
                throw fail(p, "entry \(entryName) is compressed (method \(method)); torch.save stores entries uncompressed",
                           "if the archive was re-zipped, unzip it and zip it again with `zip -0`, or re-save it with torch.save")
            }
            guard local <= raw.count - 30, u32(local) == 0x0403_4B50 else { throw fail(p, "entry \(entryName)'s local header is not at byte \(local)") }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard start <= raw.count, usize <= raw.count - start else {
                throw fail(local, "entry \(entryName) (\(usize) bytes at \(start)) runs past the end of the file (truncated file)")
            }
            var c: UInt = 0
            var done = 0
            while done < usize {  // zlib takes 32-bit lengths
                let n = min(usize - done, 1 << 30)
                c = crc32(c, (raw.baseAddress! + start + done).assumingMemoryBound(to: UInt8.self), UInt32(n))
                done += n
            }
            guard UInt32(truncatingIfNeeded: c) == crc else {
                throw fail(start, "entry \(entryName) fails its CRC-32 check (the data is damaged)")
            }
            guard entries[entryName] == nil else { throw fail(p, "entry \(entryName) appears twice", "a zip with duplicate names is ambiguous; re-save the checkpoint") }
            entries[entryName] = ZipEntry(name: entryName, start: start, size: usize)
            p += 46 + nameLen + extraLen + commentLen
        }
        return entries
    }
}
