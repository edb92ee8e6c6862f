import Formats
import Foundation
import Testing
@testable import Pipeline

@Suite struct CheckpointStoreTests {
    struct State: Codable, Sendable, Equatable { var cursor: Int; var losses: [Double] }

    func tensors(_ step: Int) -> SafeTensors.File {
        SafeTensors.File(tensors: ["w": .f32([Float(step), 1, 2], shape: [3])], metadata: ["k": "v"])
    }

    @Test func savesLoadsNewestAndKeepsLastK() throws {
        let root = TempRoot("ckpt")
        let store = CheckpointStore(directory: root.path + "/ck", configHash: "abc", keep: 2)
        var warnings: [String] = []
        #expect(try store.latest(State.self, warnings: &warnings) == nil)
        for step in [10, 20, 30] { try store.save(step: step, tensors: tensors(step), state: State(cursor: step, losses: [0.5])) }
        #expect(store.completeSteps() == [20, 30])
        let loaded = try #require(try store.latest(State.self, warnings: &warnings))
        #expect(loaded.step == 30 && loaded.state == State(cursor: 30, losses: [0.5]))
        #expect(loaded.tensors["w"] == tensors(30)["w"])
        #expect(loaded.tensors.metadata["k"] == "v")
        #expect(warnings.isEmpty)
    }

    @Test func incompleteCheckpointsAreIgnoredAndCleanedUp() throws {
        let root = TempRoot("ckpt2")
        let dir = root.path + "/ck"
        let store = CheckpointStore(directory: dir, configHash: "abc", keep: 3)
        try store.save(step: 5, tensors: tensors(5), state: State(cursor: 5, losses: []))
        // Debris of crashes at each moment of a save: a .tmp folder, and a renamed folder
        // whose DONE was never written.
        try FileManager.default.createDirectory(atPath: dir + "/ckpt-00000009.tmp", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/ckpt-00000010", withIntermediateDirectories: true)
        try Data("junk".utf8).write(to: URL(fileURLWithPath: dir + "/ckpt-00000010/tensors.safetensors"))
        var warnings: [String] = []
        #expect(try store.latest(State.self, warnings: &warnings)?.step == 5)
        try store.save(step: 10, tensors: tensors(10), state: State(cursor: 10, losses: []))
        #expect(store.completeSteps() == [5, 10])
        #expect(!FileManager.default.fileExists(atPath: dir + "/ckpt-00000009.tmp"))
        #expect(try store.latest(State.self, warnings: &warnings)?.tensors["w"] == tensors(10)["w"])
    }

    @Test func savingTheSameStepAgainKeepsTheCompleteOne() throws {
        let root = TempRoot("ckpt3")
        let store = CheckpointStore(directory: root.path + "/ck", configHash: "abc", keep: 2)
        try store.save(step: 7, tensors: tensors(7), state: State(cursor: 1, losses: []))
        try store.save(step: 7, tensors: tensors(99), state: State(cursor: 2, losses: []))
        var w: [String] = []
        #expect(try store.latest(State.self, warnings: &w)?.state.cursor == 1)
    }

    @Test func mismatchedConfigIsAnErrorNotAFreshStart() throws {
        let root = TempRoot("ckpt4")
        try CheckpointStore(directory: root.path + "/ck", configHash: "abc", keep: 2).save(step: 3, tensors: tensors(3), state: State(cursor: 3, losses: []))
        let other = CheckpointStore(directory: root.path + "/ck", configHash: "def", keep: 2)
        var w: [String] = []
        #expect(throws: JobError.self) { try other.latest(State.self, warnings: &w) }
        do {
            _ = try other.latest(State.self, warnings: &w)
        } catch let e as JobError {
            #expect(e.what.contains("different configuration") && e.fix.contains("delete"))
        }
    }

    @Test func damagedNewestFallsBackToOlderWithAWarning() throws {
        let root = TempRoot("ckpt5")
        let store = CheckpointStore(directory: root.path + "/ck", configHash: "abc", keep: 2)
        try store.save(step: 1, tensors: tensors(1), state: State(cursor: 1, losses: []))
        try store.save(step: 2, tensors: tensors(2), state: State(cursor: 2, losses: []))
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: root.path + "/ck/ckpt-00000002/tensors.safetensors"))
        var w: [String] = []
        #expect(try store.latest(State.self, warnings: &w)?.step == 1)
        #expect(w.count == 1)
    }
}
