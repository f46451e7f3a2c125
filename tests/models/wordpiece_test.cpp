#include "models/wordpiece.hpp"
#include "models/errors.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <unistd.h>

using namespace floe;
using namespace floe::models;
using Strings = std::vector<std::string>;

namespace {

// The vocabulary of tokenization_test.py (Google's BERT repository), with all special tokens.
// ids: [PAD]0 [UNK]1 [CLS]2 [SEP]3 [MASK]4 want5 ##want6 ##ed7 wa8 un9 runn10 ##ing11 ,12
Vocab classic_vocab() {
  return vocab_from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##want", "##ed",
                            "wa", "un", "runn", "##ing", ","},
                           "classic");
}

// The InputError's message; fails the test when f throws anything else or nothing.
template <class F>
std::string input_error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  FAIL("expected a floe::InputError");
  return "";
}

struct WordpieceDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("floe-wordpiece-" + std::to_string(::getpid()));
  WordpieceDir() { std::filesystem::create_directories(path); }
  ~WordpieceDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name, const std::string& contents) const {
    const std::string p = (path / name).string();
    std::ofstream(p, std::ios::binary) << contents;
    return p;
  }
};

}  // namespace

TEST_CASE("basic_tokenize: lower-casing, accents, punctuation and whitespace as BERT does", "[wordpiece]") {
  SECTION("lower-cased words, punctuation split off, whitespace collapsed (tokenization_test.py)") {
    REQUIRE(basic_tokenize(" \tHeLLo!how  \n Are yoU?  ") == Strings{"hello", "!", "how", "are", "you", "?"});
  }
  SECTION("accents are stripped after NFD: é is e + U+0301, and the mark goes") {
    REQUIRE(basic_tokenize("H\u00E9llo") == Strings{"hello"});
    REQUIRE(basic_tokenize("Cr\u00E8me Br\u00FBl\u00E9e \u00C5NGSTR\u00D6M") ==
            Strings{"creme", "brulee", "angstrom"});
    REQUIRE(basic_tokenize("He\u0301llo") == Strings{"hello"});  // already decomposed
    REQUIRE(basic_tokenize("\u0130stanbul") == Strings{"istanbul"});  // İ
  }
  SECTION("a capital sigma lowers to the final form at the end of a word, as Python's str.lower()") {
    REQUIRE(basic_tokenize("\u039F\u0394\u039F\u03A3") == Strings{"\u03BF\u03B4\u03BF\u03C2"});  // ΟΔΟΣ -> οδος
    REQUIRE(basic_tokenize("\u03A3\u0391\u03A3") == Strings{"\u03C3\u03B1\u03C2"});              // ΣΑΣ -> σας
  }
  SECTION("without lower_case nothing changes case and accents stay") {
    REQUIRE(basic_tokenize(" \tHeLLo!how  \n Are yoU?  ", false) ==
            Strings{"HeLLo", "!", "how", "Are", "yoU", "?"});
    REQUIRE(basic_tokenize("H\u00E9llo", false) == Strings{"H\u00E9llo"});
  }
  SECTION("every punctuation character is a word: ASCII symbols too, and Unicode category P") {
    REQUIRE(basic_tokenize("a.b!") == Strings{"a", ".", "b", "!"});
    REQUIRE(basic_tokenize("$5+x^2") == Strings{"$", "5", "+", "x", "^", "2"});
    REQUIRE(basic_tokenize("don't...") == Strings{"don", "'", "t", ".", ".", "."});
    REQUIRE(basic_tokenize("\u00ABhi\u00BB\u2014ok") == Strings{"\u00AB", "hi", "\u00BB", "\u2014", "ok"});
    REQUIRE(basic_tokenize("1\u00B02") == Strings{"1\u00B02"});  // ° is a symbol (So), not punctuation
  }
  SECTION("CJK ideographs are single words; kana and Hangul are not split") {
    REQUIRE(basic_tokenize("ah\u535A\u63A8zz") == Strings{"ah", "\u535A", "\u63A8", "zz"});
    // NFD splits the voiced mark off が (U+304C) and accent stripping drops it, as in BERT uncased.
    REQUIRE(basic_tokenize("\u3072\u3089\u304C\u306A") == Strings{"\u3072\u3089\u304B\u306A"});
    REQUIRE(basic_tokenize("\u3072\u3089\u304C\u306A", false) == Strings{"\u3072\u3089\u304C\u306A"});
  }
  SECTION("whitespace of any kind separates words; control characters, NUL and U+FFFD vanish") {
    REQUIRE(basic_tokenize("a\tb\nc\r\nd\u00A0e\u3000f") == Strings{"a", "b", "c", "d", "e", "f"});
    REQUIRE(basic_tokenize(std::string("ab\0c", 4)) == Strings{"abc"});
    REQUIRE(basic_tokenize("a\x05" "b\u200Bc\u00ADd\uFFFDe") == Strings{"abcde"});
    REQUIRE(basic_tokenize("ca\xFFt \xE4\xB8") == Strings{"cat"});  // invalid UTF-8 bytes dropped
    REQUIRE(basic_tokenize(" \t\n\u00A0 ").empty());
    REQUIRE(basic_tokenize("").empty());
  }
}

TEST_CASE("WordPiece splits greedily, longest match first, with ## continuations", "[wordpiece]") {
  const WordPiece wp(classic_vocab());
  SECTION("the classic BERT example") {
    REQUIRE(wp.tokenize("UNwant\u00E9d,running") == Strings{"un", "##want", "##ed", ",", "runn", "##ing"});
    REQUIRE(wp.tokenize("unwanted running") == Strings{"un", "##want", "##ed", "runn", "##ing"});
    REQUIRE(wp.tokenize("").empty());
  }
  SECTION("the longest prefix wins: want, not wa") {
    REQUIRE(wp.split_word("wanted") == Strings{"want", "##ed"});
    REQUIRE(wp.split_word("wa") == Strings{"wa"});
  }
  SECTION("a word that cannot be split completely is one [UNK], not a partial split") {
    REQUIRE(wp.tokenize("unwantedX running") == Strings{"[UNK]", "runn", "##ing"});
    REQUIRE(wp.split_word("runnx") == Strings{"[UNK]"});
    REQUIRE(wp.split_word("ed") == Strings{"[UNK]"});  // only ##ed exists, not ed as a word start
  }
  SECTION("without lower_case, upper-case words do not match a lower-case vocabulary") {
    const WordPiece cased(classic_vocab(), false);
    REQUIRE(cased.tokenize("UNwanted running") == Strings{"[UNK]", "runn", "##ing"});
  }
  SECTION("words over 100 code points are [UNK]; length counts code points, not bytes") {
    const WordPiece e(vocab_from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\u00E9", "##\u00E9"}, "e"),
                      false);
    std::string word;
    for (int i = 0; i < 100; ++i) word += "\u00E9";  // 200 bytes
    const auto pieces = e.split_word(word);
    REQUIRE(pieces.size() == 100);
    REQUIRE(pieces.front() == "\u00E9");
    REQUIRE(pieces.back() == "##\u00E9");
    REQUIRE(e.split_word(word + "\u00E9") == Strings{"[UNK]"});
  }
}

TEST_CASE("encode wraps the ids in [CLS] ... [SEP] and truncates to max_len", "[wordpiece]") {
  const WordPiece wp(classic_vocab());
  REQUIRE(wp.encode("unwanted running", 16) == std::vector<int64_t>{2, 9, 6, 7, 10, 11, 3});
  REQUIRE(wp.encode("unwanted running", 7) == std::vector<int64_t>{2, 9, 6, 7, 10, 11, 3});
  REQUIRE(wp.encode("unwanted running", 5) == std::vector<int64_t>{2, 9, 6, 7, 3});
  REQUIRE(wp.encode("unwanted running", 2) == std::vector<int64_t>{2, 3});
  REQUIRE(wp.encode("", 8) == std::vector<int64_t>{2, 3});
  REQUIRE(wp.encode("unwantedX", 8) == std::vector<int64_t>{2, 1, 3});
  const auto msg = input_error_of([&] { wp.encode("running", 1); });
  REQUIRE_THAT(msg, Catch::Contains("max_len 1"));
}

TEST_CASE("Vocab: ids are line indices and the special tokens may sit anywhere", "[wordpiece]") {
  // BERT's own vocab.txt: [PAD] 0, [unused0] 1 ..., [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103.
  const Vocab v = vocab_from_tokens({"[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the"}, "bert");
  REQUIRE(v.size() == 7);
  REQUIRE(v.pad == 0);
  REQUIRE(v.unk == 2);
  REQUIRE(v.cls == 3);
  REQUIRE(v.sep == 4);
  REQUIRE(v.mask == 5);
  REQUIRE(v.id("the") == 6);
  REQUIRE(v.id("absent") == v.unk);
  REQUIRE(v.contains("the"));
  REQUIRE_FALSE(v.contains("absent"));
  REQUIRE(WordPiece(v).encode("The cat", 8) == std::vector<int64_t>{3, 6, 2, 4});
  REQUIRE_THROWS_AS(WordPiece(Vocab{}), std::invalid_argument);  // not made by a checking function
}

TEST_CASE("read_vocab reads vocab.txt and stops on bad files with a message naming them", "[wordpiece]") {
  const WordpieceDir dir;
  SECTION("CRLF line ends, a byte-order mark and a missing final newline are fine") {
    const auto path = dir.file("crlf.txt", "\xEF\xBB\xBF[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nwant\r\n##ed");
    const Vocab v = read_vocab(path);
    REQUIRE(v.tokens == Strings{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##ed"});
    REQUIRE(v.id("##ed") == 6);
    REQUIRE(WordPiece(v).tokenize("wanted") == Strings{"want", "##ed"});
  }
  SECTION("a duplicate token: both lines are named") {
    const auto path = dir.file("dup.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nwant\n##ed\nwant\n");
    const auto msg = input_error_of([&] { read_vocab(path); });
    REQUIRE_THAT(msg, Catch::Contains(path + ":8:") && Catch::Contains("duplicate token \"want\"") &&
                          Catch::Contains("line 6"));
  }
  SECTION("no [UNK]") {
    const auto path = dir.file("nounk.txt", "[PAD]\n[CLS]\n[SEP]\n[MASK]\nwant\n");
    const auto msg = input_error_of([&] { read_vocab(path); });
    REQUIRE_THAT(msg, Catch::Contains(path) && Catch::Contains("no [UNK]"));
  }
  SECTION("no [CLS]") {
    const auto path = dir.file("nocls.txt", "[PAD]\n[UNK]\n[SEP]\n[MASK]\n");
    REQUIRE_THAT(input_error_of([&] { read_vocab(path); }), Catch::Contains(path) && Catch::Contains("no [CLS]"));
  }
  SECTION("an empty line") {
    const auto path = dir.file("blank.txt", "[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n[MASK]\n");
    REQUIRE_THAT(input_error_of([&] { read_vocab(path); }),
                 Catch::Contains(path + ":3:") && Catch::Contains("empty token"));
  }
  SECTION("invalid UTF-8") {
    const auto path = dir.file("bytes.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nw\xFFx\n");
    REQUIRE_THAT(input_error_of([&] { read_vocab(path); }),
                 Catch::Contains(path + ":6:") && Catch::Contains("UTF-8"));
  }
  SECTION("an empty file") {
    const auto path = dir.file("empty.txt", "");
    REQUIRE_THAT(input_error_of([&] { read_vocab(path); }), Catch::Contains(path) && Catch::Contains("empty"));
  }
  SECTION("a missing file") {
    const auto path = (dir.path / "absent.txt").string();
    REQUIRE_THAT(input_error_of([&] { read_vocab(path); }),
                 Catch::Contains(path) && Catch::Contains("No such file"));
  }
  SECTION("vocab_from_tokens checks the same and names its source") {
    REQUIRE_THAT(input_error_of([] { vocab_from_tokens({}, "mine"); }), Catch::Contains("mine: empty"));
    REQUIRE_THAT(input_error_of([] { vocab_from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a\nb"}, "mine"); }),
                 Catch::Contains("mine:6:") && Catch::Contains("line break"));
  }
}

TEST_CASE("write_vocab writes what read_vocab reads back", "[wordpiece]") {
  const WordpieceDir dir;
  const Vocab v = classic_vocab();
  const auto path = (dir.path / "vocab.txt").string();
  write_vocab(v, path);
  REQUIRE(read_vocab(path).tokens == v.tokens);
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  REQUIRE(text.substr(0, 14) == "[PAD]\n[UNK]\n[C");
  REQUIRE(text.back() == '\n');
  const auto bad = (dir.path / "no-such-dir" / "vocab.txt").string();
  REQUIRE_THAT(input_error_of([&] { write_vocab(v, bad); }), Catch::Contains(bad));
}

TEST_CASE("build_vocab: characters, then the most frequent pairs merged", "[wordpiece]") {
  // Words: hug x3 (Hug lower-cased), pug x2, hugs x1, "," x1. Pairs at the start:
  // (##u,##g) 6, (h,##u) 4, (p,##u) 2, (##g,##s) 1. Merging ##u+##g leaves (h,##ug) 4,
  // (p,##ug) 2, (##ug,##s) 1; then hug, then pug; hugs occurs once only.
  const Strings corpus{"hug hug pug", "Hug, pug hugs"};
  const Strings alphabet{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "g", "h", "p", "s", "u", "##g", "##s", "##u"};
  auto with = [&](Strings more) {
    Strings all = alphabet;
    all.insert(all.end(), more.begin(), more.end());
    return all;
  };
  SECTION("merges stop when the best pair is rarer than min_frequency") {
    REQUIRE(build_vocab(corpus, {100, 2, true}).tokens == with({"##ug", "hug", "pug"}));
    REQUIRE(build_vocab(corpus, {100, 1, true}).tokens == with({"##ug", "hug", "pug", "hugs"}));
  }
  SECTION("or when the vocabulary reaches its size") {
    REQUIRE(build_vocab(corpus, {15, 2, true}).tokens == with({"##ug"}));
    REQUIRE(build_vocab(corpus, {5, 2, true}).tokens == alphabet);  // characters are always kept
  }
  SECTION("pairs of equal count merge in byte order of their tokens") {
    const Strings tie{"cd ab", "ab cd"};
    REQUIRE(build_vocab(tie, {12, 1, true}).tokens ==
            Strings{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "##b", "##d", "ab"});
    REQUIRE(build_vocab(tie, {13, 1, true}).tokens.back() == "cd");
  }
  SECTION("the special tokens are ids 0..4") {
    const Vocab v = build_vocab(corpus, {});
    REQUIRE(v.pad == 0);
    REQUIRE(v.unk == 1);
    REQUIRE(v.cls == 2);
    REQUIRE(v.sep == 3);
    REQUIRE(v.mask == 4);
  }
  SECTION("without lower_case the cases are distinct characters") {
    const Vocab v = build_vocab(corpus, {100, 2, false});
    REQUIRE(v.contains("H"));
    REQUIRE(v.contains("Hug") == false);  // Hug occurs once
  }
}

TEST_CASE("build_vocab is deterministic and its vocabulary tokenizes its corpus", "[wordpiece]") {
  const Strings corpus{
      "The Rock is destined to be the 21st Century's new ``Conan'' and that he's going to make a splash.",
      "The gorgeously elaborate continuation of ``The Lord of the Rings'' trilogy is so huge that a column "
      "of words cannot adequately describe co-writer/director Peter Jackson's expanded vision.",
      "Effective but too-tepid biopic.",
      "If you sometimes like to go to the movies to have fun, Wasabi is a good place to start.",
      "Emerges as something rare, an issue movie that's so honest and keenly observed that it doesn't feel "
      "like one.",
      "Un film tr\u00E8s r\u00E9ussi, na\u00EFve et dr\u00F4le.",
  };
  const VocabOptions options{90, 2, true};
  const Vocab v = build_vocab(corpus, options);
  REQUIRE(v.size() == 90);
  Strings reversed(corpus.rbegin(), corpus.rend());
  REQUIRE(build_vocab(reversed, options).tokens == v.tokens);  // only the word counts matter

  const WordPiece wp(v);
  for (const auto& line : corpus) {
    std::string joined, words;
    for (const auto& piece : wp.tokenize(line)) {
      REQUIRE(piece != "[UNK]");
      if (piece.rfind("##", 0) == 0) {
        joined += piece.substr(2);
      } else {
        joined += (joined.empty() ? "" : " ") + piece;
      }
    }
    for (const auto& w : basic_tokenize(line)) words += (words.empty() ? "" : " ") + w;
    REQUIRE(joined == words);
  }
  REQUIRE(wp.tokenize("the the the") == Strings{"the", "the", "the"});  // a frequent word is one piece

  const WordpieceDir dir;
  const auto path = (dir.path / "built.txt").string();
  write_vocab(v, path);
  const Vocab back = read_vocab(path);
  REQUIRE(back.tokens == v.tokens);
  REQUIRE(WordPiece(back).encode(corpus[0], 64) == wp.encode(corpus[0], 64));
}

TEST_CASE("build_vocab stops on bad options and empty corpora with a message", "[wordpiece]") {
  REQUIRE_THAT(input_error_of([] { build_vocab({"a b"}, {4, 2, true}); }), Catch::Contains("size 4"));
  REQUIRE_THAT(input_error_of([] { build_vocab({"a b"}, {100, 0, true}); }), Catch::Contains("min_frequency 0"));
  REQUIRE_THAT(input_error_of([] { build_vocab({" ", "\t"}, {}); }), Catch::Contains("no word"));

  const WordpieceDir dir;
  const auto one = dir.file("one.txt", "hug hug pug\n");
  const auto two = dir.file("two.txt", "Hug, pug hugs");
  REQUIRE(build_vocab_from_files({one, two}, {100, 2, true}).tokens ==
          build_vocab({"hug hug pug", "Hug, pug hugs"}, {100, 2, true}).tokens);
  const auto missing = (dir.path / "missing.txt").string();
  REQUIRE_THAT(input_error_of([&] { build_vocab_from_files({one, missing}, {}); }),
               Catch::Contains("corpus file " + missing));
  const auto blank = dir.file("blank.txt", "\n \n");
  REQUIRE_THAT(input_error_of([&] { build_vocab_from_files({blank}, {}); }),
               Catch::Contains(blank) && Catch::Contains("no word"));
}
