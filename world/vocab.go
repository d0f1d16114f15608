package world

// category is one department of the synthetic catalog. Each has its own
// vocabulary so that titles, descriptions, tags and queries about it share
// words that no other category uses, which is what lets a text retriever
// (and the tests) tell categories apart. Words are single tokens on purpose:
// a query of "2-4 words" then really has 2-4 words.
type category struct {
	name       string
	nouns      []string // what the item is; disjoint across categories
	adjectives []string
	features   []string // materials, formats, ingredients
	uses       []string // who or what it is for
	brands     []string // first brands are the most common (Zipf)
	median     float64  // median price; prices are log-normal around it
	sigma      float64  // log-normal spread of prices
	weight     float64  // relative share of the catalog
	ages       []ageShare
}

// ageShare is one rung of a category's age-rating distribution.
type ageShare struct {
	age int
	p   float64
}

var everyone = []ageShare{{0, 1}}

// Brands shared across categories, so brand rules and brand preferences
// cut across departments as they do in real inventories.
const (
	northwind   = "Northwind"
	copperleaf  = "Copperleaf"
	lumio       = "Lumio"
	kindred     = "Kindred"
	stonegroove = "Stonegroove Records"
)

var categories = []category{
	{
		name:       "heavy-metal",
		nouns:      []string{"riffs", "anthem", "album", "boxset", "bootleg", "demo", "compilation", "ep"},
		adjectives: []string{"thunderous", "brutal", "doom", "sludgy", "shredding", "epic", "relentless", "blackened", "crushing", "howling"},
		features:   []string{"vinyl", "cassette", "cd", "remastered", "gatefold", "digipak"},
		uses:       []string{"headbanging", "moshpits", "festivals", "roadtrips", "workouts"},
		brands:     []string{"Ironclad Records", "Grimforge", stonegroove, "Black Anvil Music"},
		median:     18, sigma: 0.4, weight: 5,
		// Rated 12+ throughout, with explicit releases at 16 and 18, so that
		// "no heavy metal for young children" rules have work to do.
		ages: []ageShare{{12, 0.8}, {16, 0.1}, {18, 0.1}},
	},
	{
		name:       "jazz",
		nouns:      []string{"record", "session", "suite", "standards", "ballads", "quartet", "trio", "recital"},
		adjectives: []string{"smoky", "mellow", "swinging", "cool", "modal", "improvised", "bluesy", "soulful"},
		features:   []string{"acoustic", "analog", "live", "mono", "audiophile", "reissue"},
		uses:       []string{"evenings", "dinners", "lounges", "studying", "relaxing"},
		brands:     []string{"Bluenote Alley", stonegroove, "Velvet Lamp Records"},
		median:     22, sigma: 0.35, weight: 4, ages: everyone,
	},
	{
		name:       "video-games",
		nouns:      []string{"game", "shooter", "rpg", "platformer", "racer", "simulator", "roguelike", "adventure"},
		adjectives: []string{"cinematic", "pixelated", "competitive", "cooperative", "immersive", "tactical", "retro", "sprawling"},
		features:   []string{"multiplayer", "splitscreen", "controller", "dlc", "crossplay", "offline"},
		uses:       []string{"gaming", "streaming", "speedruns", "parties", "consoles"},
		brands:     []string{"Pixelforge", lumio, "Redshift Games", "Octave Studios"},
		median:     40, sigma: 0.5, weight: 8,
		ages: []ageShare{{0, 0.3}, {7, 0.2}, {12, 0.2}, {16, 0.15}, {18, 0.15}},
	},
	{
		name:       "toys",
		nouns:      []string{"puzzle", "plush", "blocks", "robot", "doll", "kite", "train", "dinosaur"},
		adjectives: []string{"colorful", "cuddly", "wooden", "squeaky", "magnetic", "sturdy", "tiny", "bright"},
		features:   []string{"washable", "rechargeable", "montessori", "stackable", "battery", "nontoxic"},
		uses:       []string{"toddlers", "playtime", "preschool", "bathtime", "nursery"},
		brands:     []string{"Tumbletot", kindred, "Brightbean", "Little Orbit"},
		median:     20, sigma: 0.5, weight: 7,
		// Small parts: some toys are not for under-threes.
		ages: []ageShare{{0, 0.8}, {3, 0.2}},
	},
	{
		name:       "board-games",
		nouns:      []string{"boardgame", "cardgame", "deckbuilder", "dice", "expansion", "tiles", "wargame", "trivia"},
		adjectives: []string{"strategic", "clever", "cutthroat", "family", "thematic", "quick", "legacy", "hilarious"},
		features:   []string{"tokens", "miniatures", "solo", "campaign", "components", "rulebook"},
		uses:       []string{"gamenight", "families", "friends", "tabletop", "holidays"},
		brands:     []string{kindred, "Meeple Works", "Castle Rook Games"},
		median:     35, sigma: 0.45, weight: 4,
		ages: []ageShare{{0, 0.4}, {7, 0.4}, {12, 0.2}},
	},
	{
		name:       "running",
		nouns:      []string{"sneaker", "trainer", "shoe", "shorts", "singlet", "vest", "sock", "insole"},
		adjectives: []string{"lightweight", "cushioned", "breathable", "responsive", "springy", "grippy", "reflective", "fast"},
		features:   []string{"mesh", "carbon", "foam", "knit", "seamless", "heeldrop"},
		uses:       []string{"marathons", "trails", "sprinting", "jogging", "races", "treadmill"},
		brands:     []string{"Stride Labs", northwind, "Pacer", "Fleetfoot"},
		median:     90, sigma: 0.5, weight: 7, ages: everyone,
	},
	{
		name:       "cycling",
		nouns:      []string{"bicycle", "helmet", "saddle", "pedals", "derailleur", "jersey", "bibshorts", "pannier"},
		adjectives: []string{"aerodynamic", "rugged", "sleek", "adjustable", "stiff", "foldable", "vented", "ergonomic"},
		features:   []string{"aluminium", "titanium", "tubeless", "clipless", "disc", "gravel"},
		uses:       []string{"commuting", "touring", "bikepacking", "climbing", "descents", "velodrome"},
		brands:     []string{"Spokeworks", northwind, "Ridgeline Cycles"},
		median:     150, sigma: 0.9, weight: 5, ages: everyone,
	},
	{
		name:       "camping",
		nouns:      []string{"tent", "sleepingbag", "backpack", "lantern", "stove", "hammock", "tarp", "cooler"},
		adjectives: []string{"waterproof", "ultralight", "packable", "insulated", "durable", "windproof", "spacious", "compact"},
		features:   []string{"ripstop", "nylon", "down", "polyester", "dyneema", "zippered"},
		uses:       []string{"hiking", "backpacking", "camping", "expeditions", "mountaineering", "overlanding"},
		brands:     []string{northwind, "Summit Hollow", "Campfire Co"},
		median:     80, sigma: 0.7, weight: 6, ages: everyone,
	},
	{
		name:       "kitchen",
		nouns:      []string{"skillet", "saucepan", "knife", "wok", "casserole", "blender", "colander", "spatula"},
		adjectives: []string{"nonstick", "forged", "enameled", "heavy", "professional", "seasoned", "precise", "gleaming"},
		features:   []string{"castiron", "copper", "stainless", "ceramic", "carbonsteel", "induction"},
		uses:       []string{"searing", "baking", "braising", "roasting", "sauteing", "mealprep"},
		brands:     []string{"Hearthline", copperleaf, "Ember & Oak", "Chefwright"},
		median:     45, sigma: 0.6, weight: 8, ages: everyone,
	},
	{
		name:       "coffee",
		nouns:      []string{"beans", "grinder", "frenchpress", "mokapot", "dripper", "espresso", "pods", "mug"},
		adjectives: []string{"aromatic", "bold", "smooth", "fruity", "chocolatey", "nutty", "velvety", "rich"},
		features:   []string{"arabica", "robusta", "singleorigin", "burr", "decaf", "organic"},
		uses:       []string{"mornings", "brewing", "pourover", "cappuccino", "offices", "latte"},
		brands:     []string{"Roastery Nine", copperleaf, "Bean & Bloom"},
		median:     18, sigma: 0.6, weight: 6, ages: everyone,
	},
	{
		name:       "wine",
		nouns:      []string{"merlot", "chardonnay", "riesling", "rioja", "champagne", "prosecco", "malbec", "pinot"},
		adjectives: []string{"crisp", "oaky", "dry", "sparkling", "robust", "elegant", "tannic", "sweet"},
		features:   []string{"vintage", "reserve", "magnum", "cork", "barrel", "biodynamic"},
		uses:       []string{"pairing", "celebrations", "cellaring", "tasting", "gifting"},
		brands:     []string{"Chateau Verre", "Vineyard Row", "Cellar Lane"},
		median:     25, sigma: 0.6, weight: 4,
		ages: []ageShare{{18, 1}}, // alcohol
	},
	{
		name:       "gardening",
		nouns:      []string{"trowel", "pruner", "hose", "planter", "seeds", "compost", "rake", "greenhouse"},
		adjectives: []string{"hardy", "perennial", "evergreen", "flowering", "heirloom", "raised", "expandable", "weatherproof"},
		features:   []string{"galvanized", "terracotta", "biodegradable", "peat", "bamboo", "cedar"},
		uses:       []string{"vegetables", "herbs", "lawns", "balconies", "allotments", "seedlings"},
		brands:     []string{"Greenthumb", copperleaf, "Fern & Furrow"},
		median:     25, sigma: 0.7, weight: 5, ages: everyone,
	},
	{
		name:       "skincare",
		nouns:      []string{"serum", "moisturizer", "cleanser", "sunscreen", "toner", "balm", "mask", "exfoliant"},
		adjectives: []string{"hydrating", "gentle", "soothing", "brightening", "fragrancefree", "nourishing", "silky", "dewy"},
		features:   []string{"hyaluronic", "retinol", "niacinamide", "vitamin", "spf50", "ceramides"},
		uses:       []string{"sensitive", "dryness", "acne", "wrinkles", "nighttime", "daily"},
		brands:     []string{"Luma Skin", "Dermaleaf", "Pure Petal"},
		median:     28, sigma: 0.5, weight: 6, ages: everyone,
	},
	{
		name:       "headphones",
		nouns:      []string{"headphones", "earbuds", "headset", "speaker", "amplifier", "soundbar", "microphone", "dac"},
		adjectives: []string{"wireless", "noisecancelling", "punchy", "balanced", "portable", "premium", "wired", "hifi"},
		features:   []string{"bluetooth", "usbc", "aptx", "planar", "dynamic", "lossless"},
		uses:       []string{"commutes", "studio", "podcasts", "gym", "travel", "calls"},
		brands:     []string{"Sonora", lumio, "Arcwave"},
		median:     110, sigma: 0.8, weight: 6, ages: everyone,
	},
	{
		name:       "pets",
		nouns:      []string{"leash", "collar", "harness", "kibble", "litter", "scratcher", "aquarium", "crate"},
		adjectives: []string{"grainfree", "chewproof", "cozy", "odorless", "padded", "natural", "tasty", "calming"},
		features:   []string{"salmon", "chicken", "catnip", "orthopedic", "hypoallergenic", "clumping"},
		uses:       []string{"puppies", "kittens", "dogs", "cats", "walks", "training"},
		brands:     []string{"Pawsome", "Tailwind Pets", "Whisker Co"},
		median:     22, sigma: 0.6, weight: 5, ages: everyone,
	},
	{
		name:       "thrillers",
		nouns:      []string{"novel", "thriller", "paperback", "hardcover", "audiobook", "mystery", "ebook", "trilogy"},
		adjectives: []string{"gripping", "twisty", "chilling", "suspenseful", "dark", "noir", "haunting", "bestselling"},
		features:   []string{"unabridged", "illustrated", "signed", "annotated", "largeprint", "firstedition"},
		uses:       []string{"beaches", "bookclubs", "vacations", "weekends", "insomniacs", "flights"},
		brands:     []string{"Nightshade Press", "Raven Quill", "Harbor & Finch"},
		median:     15, sigma: 0.4, weight: 5,
		ages: []ageShare{{12, 0.5}, {16, 0.4}, {18, 0.1}},
	},
}

// kidCategories are the only departments a child's hidden preferences draw
// from; teenagers add a few more. Adults draw from all of them.
var (
	kidCategories  = []string{"toys", "board-games", "video-games", "jazz"}
	teenCategories = []string{"video-games", "heavy-metal", "board-games", "running", "headphones", "thrillers", "skincare", "cycling"}
)
