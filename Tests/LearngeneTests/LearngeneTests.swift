import Testing
@testable import Learngene
