import Tensors

/// Two concepts for CreTok to fuse ("lion" + "cake"). The order is the order of the list;
/// training and evaluation use both orders.
public struct CreTokPair: Sendable, Codable, Hashable, CustomStringConvertible {
    public var first: String
    public var second: String
    public init(_ first: String, _ second: String) {
        self.first = first
        self.second = second
    }
    public var reversed: CreTokPair { CreTokPair(second, first) }
    /// The pair as a set: equal for (a, b) and (b, a).
    public var unordered: Set<String> { [first, second] }
    public var description: String { "\(first) + \(second)" }
}

/// A category of concepts: common concrete nouns that are each one WordPiece of the uncased
/// BERT vocabulary (all-MiniLM-L6-v2's; `CreTokPairs.concepts` are checked against it when
/// the model is installed).
public struct CreTokCategory: Sendable, Equatable {
    public var name: String
    public var concepts: [String]
}

/// The concept pairs CreTok trains and is evaluated on, in the spirit of CangJie (200 training
/// pairs of animals, plants and other categories) and its held-out pairs (methods.md §5.2).
///
/// 60 concepts in 6 categories of 10 (DisTok describes CangJie as "60 common concepts"). Pairs
/// are drawn by `draw`, a fixed procedure with a fixed seed, so the lists are the same on every
/// machine and release:
///
/// 1. Candidates: every pair of concepts from two *different* categories (unrelated concepts,
///    like lettuce + mantis): 15 category pairs × 100 = 1,500, enumerated in list order
///    (concept i < concept j), then shuffled by `RandomStream(seed: seed).permutation`.
/// 2. Training: walk the shuffle and keep a pair while fewer than `training` are kept and
///    both of its concepts are in fewer than ⌈2·training / 60⌉ + 1 kept pairs (here 8), so no
///    concept dominates. The 200 pairs use every concept (2 to 8 times each).
/// 3. Held out: walk the rest of the shuffle (pairs not kept for training, hence never seen in
///    either order) and keep a pair while fewer than `heldOut` are kept and both of its
///    concepts are in fewer than 2 kept held-out pairs. Every held-out concept is a training
///    concept (step 2 uses all 60), but the combination is new: the zero-shot setting of
///    CangJie's test pairs taken from BASS.
public enum CreTokPairs {
    public static let categories: [CreTokCategory] = [
        CreTokCategory(name: "animals", concepts: ["cat", "dog", "lion", "elephant", "zebra", "owl", "penguin", "turtle", "octopus", "butterfly"]),
        CreTokCategory(name: "plants", concepts: ["rose", "lily", "daisy", "cactus", "fern", "oak", "bamboo", "mushroom", "pumpkin", "cabbage"]),
        CreTokCategory(name: "foods", concepts: ["apple", "banana", "lemon", "strawberry", "cherry", "pizza", "cake", "bread", "cheese", "burger"]),
        CreTokCategory(name: "objects", concepts: ["chair", "lamp", "clock", "umbrella", "kettle", "guitar", "piano", "candle", "vase", "backpack"]),
        CreTokCategory(name: "vehicles", concepts: ["car", "bus", "train", "bicycle", "truck", "boat", "airplane", "helicopter", "rocket", "submarine"]),
        CreTokCategory(name: "buildings", concepts: ["castle", "tower", "bridge", "house", "lighthouse", "tent", "church", "windmill", "pyramid", "barn"]),
    ]

    /// Every concept, category after category.
    public static var concepts: [String] { categories.flatMap(\.concepts) }

    /// The seed of the shipped lists ("CreT" in ASCII).
    public static let seed: UInt64 = 0x4372_6554

    /// 200 training pairs and 30 held-out pairs, disjoint in either order.
    public static let split: (training: [CreTokPair], heldOut: [CreTokPair]) = draw(categories: categories, training: 200, heldOut: 30, seed: seed)
    public static var training: [CreTokPair] { split.training }
    public static var heldOut: [CreTokPair] { split.heldOut }

    /// The procedure in the type's documentation, for any categories and sizes. Returns fewer
    /// pairs than asked when the caps leave no more.
    public static func draw(categories: [CreTokCategory], training: Int, heldOut: Int, seed: UInt64) -> (training: [CreTokPair], heldOut: [CreTokPair]) {
        var candidates: [CreTokPair] = []
        for (a, ca) in categories.enumerated() {
            for cb in categories[(a + 1)...] {
                for x in ca.concepts { for y in cb.concepts { candidates.append(CreTokPair(x, y)) } }
            }
        }
        // List order (concept i < concept j), independent of the category loop above.
        let index = Dictionary(categories.flatMap(\.concepts).enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        candidates.sort { (index[$0.first]!, index[$0.second]!) < (index[$1.first]!, index[$1.second]!) }
        var random = RandomStream(seed: seed)
        let order = random.permutation(candidates.count).map { candidates[$0] }

        let conceptCount = max(1, index.count)
        func take(_ pool: [CreTokPair], count: Int, cap: Int) -> (kept: [CreTokPair], rest: [CreTokPair]) {
            var kept: [CreTokPair] = [], rest: [CreTokPair] = []
            var uses: [String: Int] = [:]
            for p in pool {
                if kept.count < count && uses[p.first, default: 0] < cap && uses[p.second, default: 0] < cap {
                    kept.append(p)
                    uses[p.first, default: 0] += 1
                    uses[p.second, default: 0] += 1
                } else {
                    rest.append(p)
                }
            }
            return (kept, rest)
        }
        let train = take(order, count: training, cap: (2 * training + conceptCount - 1) / conceptCount + 1)
        let test = take(train.rest, count: heldOut, cap: 2)
        return (train.kept, test.kept)
    }
}
