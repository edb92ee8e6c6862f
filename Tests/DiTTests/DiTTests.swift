import Testing
@testable import DiT
