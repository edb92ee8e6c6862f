import Testing
@testable import Tensors
@Test func placeholder() {}
