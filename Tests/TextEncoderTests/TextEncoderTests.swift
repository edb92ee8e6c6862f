import Testing
@testable import TextEncoder
