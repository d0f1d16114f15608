// Generates golden.json: WordPiece ids for a few hundred varied strings,
// produced by an implementation independent of ours (transformers.js) from
// the real all-MiniLM-L6-v2 tokenizer.json. embed's tests compare the Go
// tokeniser against it.
//
//   cd embed/testdata/wordpiece
//   npm install --ignore-scripts   # node_modules/ is gitignored
//   node gen.mjs [TOKENIZER_DIR]   # default ../../../../shared/models/all-MiniLM-L6-v2-tokenizer
//
// Two kinds of input are left out on purpose, because the two
// implementations disagree by design, not by bug:
//   - literal special tokens ("[CLS]", "[SEP]", ...): transformers.js
//     matches them inside the text; the Go tokeniser treats input as text
//     so users cannot forge structural tokens;
//   - CJK ideographs outside the Basic Multilingual Plane: transformers.js
//     tests UTF-16 code units for CJK, so it never splits them; BERT (and
//     the Go tokeniser) does. A Go unit test covers that case by hand.
import { AutoTokenizer, env } from '@huggingface/transformers';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.resolve(process.argv[2] ?? path.join(here, '../../../../shared/models/all-MiniLM-L6-v2-tokenizer'));

env.allowRemoteModels = false;
env.localModelPath = path.dirname(dir) + '/';
const tokenizer = await AutoTokenizer.from_pretrained(path.basename(dir));
const vocab = readFileSync(path.join(dir, 'vocab.txt'), 'utf8').split('\n');

const fixed = [
  // Plain English and casing.
  'hello world', 'Hello, World!', 'HELLO WORLD', 'The quick brown fox jumps over the lazy dog.',
  'wireless noise cancelling headphones', 'Noise-Cancelling Over-Ear Headphones (Black)',
  "don't stop believin'", "It's 5 o'clock somewhere", 'U.S.A. vs. U.K.', 'e.g., i.e., etc.',
  'unbelievably unaffordable antidisestablishmentarianism', 'tokenization tokenizer tokenized',
  'playing played player plays', 'running runner ran', 'GPU CPU RAM SSD NVMe', 'iPhone 15 Pro Max 256GB',
  'COVID-19 SARS-CoV-2 mRNA-1273', 'IL-6 and TNF-α levels in CD4+ T cells', 'p < 0.05; n = 1,234',
  '0.5% of 1e-3 mg/kg', '3.14159 2.71828 1.41421', '1234567890', '12,345.67 USD', '$100 + €50 = ?',
  // Scientific claims in SciFact style (written here).
  '0-dimensional biomaterials show inductive properties.',
  'A deficiency of vitamin B12 increases blood levels of homocysteine.',
  'ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.',
  'Antibiotic induced alterations in the gut microbiome reduce resistance against Clostridium difficile',
  'β-amyloid plaques and tau tangles in Alzheimer’s disease', 'Ca2+/calmodulin-dependent protein kinase II',
  'Helicobacter pylori–induced gastritis', 'The 5′-UTR of the mRNA', 'Na⁺/K⁺-ATPase pump', 'H₂O and CO₂',
  // Accents and Latin scripts.
  'café crème brûlée', 'Crème Brûlée À La Carte', 'naïve coöperate façade', 'Ångström Øresund Ærø',
  'straße Straße STRASSE', 'Łódź Kraków Gdańsk', 'São Paulo, Brasil', 'Müller Schröder Göttingen',
  'Dvořák Smetana Janáček', 'Ñandú español mañana', 'İstanbul Iğdır ılık', 'ĲSSELMEER ĳs', 'ﬁnance ﬂow',
  'Mötley Crüe', 'résumé resume', 'Zürich', 'piñata jalapeño', 'Việt Nam Hà Nội', 'Đà Nẵng',
  'e\u0301 decomposed accent', 'A\u030A combining ring', 'n\u0303o', 'ǅ ǆ Ǆ titlecase digraphs',
  // Greek, Cyrillic, other alphabets.
  'ΟΔΟΣ Οδός', 'ΑΒ\u0387Σ ok', 'Î·Σ ì', 'ΑΣ\u0301 x', 'ΑΣΑ', 'σ Σ. ΣΑ', 'ΣΊΣΥΦΟΣ σίσυφος', 'Σ alone', 'ΑΣ.', 'Ελληνικά γράμματα αβγδε', 'Москва Россия',
  'Привет, мир!', 'Ёлка ёжик', 'Київ Україна', 'Беларусь', 'Ⅻ Ⅳ roman numerals',
  'مرحبا بالعالم', 'שלום עולם', 'नमस्ते दुनिया', 'हिन्दी भाषा', 'สวัสดีชาวโลก', 'ქართული',
  'Հայաստան', 'ኢትዮጵያ', 'தமிழ்', 'বাংলা', 'ગુજરાતી', 'ខ្មែរ',
  // CJK, kana and hangul.
  '你好世界', '中文分词测试', '我爱北京天安门', '東京タワー', 'ひらがなとカタカナ', 'こんにちは世界',
  '日本語のテキスト', '한국어 텍스트', '안녕하세요 세계', '漢字かな交じり文', '豈 更 車', 'mixed中文and English',
  '価格は1,000円です。', '（全角括弧）「かぎ」', '１２３ＡＢＣ', 'ｈａｌｆ　ｗｉｄｔｈ',
  // Punctuation of every kind.
  '...', '!!!???', 'a-b_c.d/e\\f', '"quoted" \'single\'', '«guillemets» „Anführung“', '—em dash– en dash-',
  '¿Qué? ¡Sí!', '§ ¶ † ‡ • …', '#hashtag @mention', 'user@example.com', 'https://example.com/path?q=1&r=2#frag',
  'C:\\Program Files\\App', '<div class="x">html</div>', '{"json": [1, 2, 3]}', 'x^2 + y^2 = z^2',
  'a|b|c', '~tilde~ `backtick`', '(parens) [brackets] {braces}', '50% off!!! ***SALE***', '©2024 ®™',
  '°C ± µm', '½ ¼ ¾', '←↑→↓ ⇒', '∑∏∫√∞ ≤≥≠', '★☆♥♦', '‰ ‱', '※ 〜', '‘smart’ “quotes”',
  // Emoji.
  '😀', 'I ❤️ NY', '👍🏽 thumbs', '👨‍👩‍👧‍👦 family', '🇺🇸🇫🇷 flags', '🔥🔥🔥 hot', 'rocket🚀launch',
  '☕ coffee', '✔ done ✘ failed', '🙂🙃', 'emoji at end 🎉',
  // Whitespace and controls.
  '  leading and trailing  ', 'tabs\tand\nnewlines\r\nhere', 'non\u00a0breaking\u00a0space',
  'zero\u200bwidth\u200bspace', 'zero\u200cwidth\u200dnon joiner', 'soft\u00adhyphen', 'bom\ufeffhere',
  'ideographic\u3000space', 'em\u2003space thin\u2009space', 'line\u2028sep para\u2029sep',
  'bell\u0007char', 'null\u0000char', 'replacement\ufffdchar', 'private\ue000use', 'rtl\u200fmark',
  'narrow\u202fnbsp', 'ogham\u1680space', '', ' ', '\t\n',
  // Long words and repetition.
  'a'.repeat(99), 'b'.repeat(100), 'c'.repeat(101), 'supercalifragilisticexpialidocious',
  'pneumonoultramicroscopicsilicovolcanoconiosis', 'Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch',
  'x'.repeat(150) + ' short', 'ab'.repeat(60), 'word '.repeat(40).trim(), 'é'.repeat(101),
  'thisisaverylongwordwithoutanyspacesbutunder100characters', 'qwxzvbnm', 'zzzzzzzz', 'xyzzy plugh',
  // Product-catalog style.
  'Samsung Galaxy S24 Ultra — 512 GB, Titanium Gray', 'Nike Air Max 90 (Men\'s) Size 10.5',
  'LEGO® Star Wars™ Millennium Falcon #75192', 'Organic Extra-Virgin Olive Oil, 1L', 'USB-C to HDMI 2.1 adapter 8K@60Hz',
  'Kids\' T-shirt 3-4Y', 'Sony WH-1000XM5/B', 'Levi\'s 501® Original Fit Jeans', 'Dr. Martens 1460 8-Eye Boot',
  'Heavy-metal band: Metallica — "Master of Puppets" (1986)', 'Children\'s book: The Very Hungry Caterpillar',
  // Code-ish.
  'func main() { fmt.Println("hi") }', 'snake_case_identifier', 'camelCaseIdentifier', 'SCREAMING_SNAKE',
  'kebab-case-name', 'a.b.c.d', 'v1.2.3-beta+build.5', '0xDEADBEEF', '#ff00ff', '192.168.0.1:8080',
];

// Seeded pseudo-random mixtures from character pools, for breadth beyond
// what anyone writes by hand.
const pools = [
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  '       ',
  '.,;:!?-_()[]{}\'"/\\@#$%^&*+=<>|~`',
  'àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÉÎÕÜßøæœ',
  'αβγδεζηθΣσςΩωАБВгдеЖзИй',
  '中文字世界人大小日本東京',
  'ひらがなカタカナ한국어',
  '😀🎉🔥👍🏽❤️🚀',
  '\u0301\u0308\u200d\u00a0\u3000\u2014\u2026\u00b7\u2019',
];
let seed = 0x2545f491;
function rnd(n) {
  // xorshift32: deterministic, so rerunning the script changes nothing.
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed % n;
}
const random = [];
for (let i = 0; i < 120; i++) {
  const len = 1 + rnd(40);
  let s = '';
  for (let j = 0; j < len; j++) {
    const pool = [...pools[rnd(pools.length)]];
    s += pool[rnd(pool.length)];
  }
  random.push(s);
}

const cases = [...fixed, ...random].map((text) => {
  const ids = tokenizer.encode(text);
  return { text, ids, tokens: ids.map((id) => vocab[id]) };
});
// One case per line keeps diffs of regenerated goldens readable.
const version = JSON.parse(readFileSync(path.join(here, 'node_modules/@huggingface/transformers/package.json'), 'utf8')).version;
writeFileSync(path.join(here, 'golden.json'), '{"generator": ' + JSON.stringify('transformers.js ' + version) +
  ', "tokenizer": "all-MiniLM-L6-v2 tokenizer.json", "cases": [\n' +
  cases.map((c) => JSON.stringify(c)).join(',\n') + '\n]}\n');
console.log(`wrote ${cases.length} cases`);
