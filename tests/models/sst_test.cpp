#include "models/sst.hpp"
#include "models/errors.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace floe;
using namespace floe::models;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/floe-sst-XXXXXX";
    path = mkdtemp(name);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& file, const std::string& content) const {
    const std::string p = path + "/" + file;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
};

using Phrases = std::vector<std::pair<std::string, int>>;

Phrases phrases_of(const SstSentence& s) {
  Phrases out;
  for (const auto& p : s.phrases) out.emplace_back(p.text, p.fine_label);
  return out;
}

Phrases pairs_of(const std::vector<LabelledText>& texts) {
  Phrases out;
  for (const auto& t : texts) out.emplace_back(t.text, t.label);
  return out;
}

// The message of the InputError that parsing `content` (as the file "t.txt") throws.
std::string error_of(const std::string& content) {
  try {
    parse_sst_trees(content, "t.txt");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("an SST tree gives its sentence, its label and every node as a phrase in pre-order",
          "[sst]") {
  const auto s = parse_sst_trees("(3 (2 It) (4 (2 's) (4 (3 charming) (2 .))))\n", "t.txt");
  REQUIRE(s.size() == 1);
  REQUIRE(s[0].text == "It 's charming .");
  REQUIRE(s[0].fine_label == 3);
  REQUIRE(phrases_of(s[0]) == Phrases{{"It 's charming .", 3},
                                      {"It", 2},
                                      {"'s charming .", 4},
                                      {"'s", 2},
                                      {"charming .", 4},
                                      {"charming", 3},
                                      {".", 2}});

  SECTION("a unary chain gives one phrase per node") {
    const auto u = parse_sst_trees("(1 (0 bad))", "t.txt");
    REQUIRE(phrases_of(u[0]) == Phrases{{"bad", 1}, {"bad", 0}});
  }
  SECTION("one sentence per line, in file order") {
    const auto two = parse_sst_trees("(0 (0 bad))\n(4 (4 good))\n", "t.txt");
    REQUIRE(two.size() == 2);
    REQUIRE(two[0].text == "bad");
    REQUIRE(two[1].text == "good");
    REQUIRE(two[1].fine_label == 4);
  }
}

TEST_CASE("SST words are decoded from their PTB escapes", "[sst]") {
  const auto s = parse_sst_trees(
      "(2 (2 -LRB-) (2 (2 either\\/or) (2 (2 \\*) (2 -RRB-))) (2 (2 -LSB-) (2 -RSB-)))", "t.txt");
  REQUIRE(s[0].text == "( either/or * ) [ ]");
  REQUIRE(s[0].phrases[1].text == "(");
  REQUIRE(s[0].phrases[2].text == "either/or * )");
  SECTION("a word that merely contains an escape's letters is kept") {
    REQUIRE(parse_sst_trees("(2 x-LRB-)", "t.txt")[0].text == "x-LRB-");
    REQUIRE(parse_sst_trees("(2 a\\b)", "t.txt")[0].text == "a\\b");
  }
  SECTION("UTF-8 and case are kept byte for byte") {
    REQUIRE(parse_sst_trees("(3 (3 Caf\xc3\xa9) (2 Noir))", "t.txt")[0].text ==
            "Caf\xc3\xa9 Noir");
  }
}

TEST_CASE("SST files tolerate spacing, CRLF and blank lines", "[sst]") {
  const auto s = parse_sst_trees("\n  ( 3\t(2  a )(3 b) )  \r\n\r\n(1 c)", "t.txt");
  REQUIRE(s.size() == 2);
  REQUIRE(phrases_of(s[0]) == Phrases{{"a b", 3}, {"a", 2}, {"b", 3}});
  REQUIRE(s[1].text == "c");
  REQUIRE(parse_sst_trees("", "t.txt").empty());
}

TEST_CASE("malformed SST trees are rejected naming file, line and column", "[sst]") {
  SECTION("a label that is not a number") {
    REQUIRE(error_of("(3 (2 a) (x b))") ==
            "t.txt:1:11: missing label: expected a label 0-4 after '(', found 'x'");
    REQUIRE(error_of("((2 a))") ==
            "t.txt:1:2: missing label: expected a label 0-4 after '(', found '('");
  }
  SECTION("a label outside 0..4") {
    REQUIRE(error_of("(3 (2 a) (7 b))") == "t.txt:1:11: label 7 outside 0..4");
    REQUIRE(error_of("(12 a)") == "t.txt:1:2: label 12 outside 0..4");
    REQUIRE(error_of("(-1 a)") == "t.txt:1:2: label -1 outside 0..4");
  }
  SECTION("unbalanced parentheses") {
    REQUIRE(error_of("(3 (2 a) (2 b)") ==
            "t.txt:1:15: unbalanced parentheses: expected ')' to close the '(' at column 1, "
            "found the end of the line");
    REQUIRE(error_of("(3 (2 a) (2 b\n(1 c)") ==
            "t.txt:1:14: unbalanced parentheses: expected ')' to close the '(' at column 10, "
            "found the end of the line");
    REQUIRE(error_of("(3 (2 a)))") ==
            "t.txt:1:10: unbalanced parentheses: ')' with no '(' to close");
    REQUIRE(error_of("(") ==
            "t.txt:1:2: unbalanced parentheses: expected a label 0-4 after '(', found the end "
            "of the line");
  }
  SECTION("an empty tree") {
    REQUIRE(error_of("()") == "t.txt:1:2: empty tree: expected a label 0-4 after '(', found ')'");
    REQUIRE(error_of("(3 (2 a) (2 ))") ==
            "t.txt:1:13: empty tree: expected a word or a subtree after the label, found ')'");
  }
  SECTION("a node with a word and subtrees, or two words") {
    REQUIRE(error_of("(3 a (2 b))") ==
            "t.txt:1:6: expected ')' after the word of this node (a node holds one word or "
            "subtrees, not both), found '('");
    REQUIRE(error_of("(3 (2 a) b)") ==
            "t.txt:1:10: expected '(' or ')' after a subtree (a node holds one word or "
            "subtrees, not both), found the word 'b'");
    REQUIRE(error_of("(3 a b)") ==
            "t.txt:1:6: expected ')' after the word of this node (a leaf holds one word), "
            "found the word 'b'");
  }
  SECTION("trailing garbage and a line that is no tree") {
    REQUIRE(error_of("(3 (2 a)) (2 b)") ==
            "t.txt:1:11: expected the end of the line after the tree's closing ')', found '('");
    REQUIRE(error_of("(3 (2 a)) junk") ==
            "t.txt:1:11: expected the end of the line after the tree's closing ')', found "
            "'junk'");
    REQUIRE(error_of("3 (2 a)") == "t.txt:1:1: expected '(' to open a tree, found '3'");
  }
  SECTION("lines are counted from 1 including blank lines; CRLF does not shift columns") {
    REQUIRE(error_of("(2 a)\n\n(3 (2 a) (x b))\r\n") ==
            "t.txt:3:11: missing label: expected a label 0-4 after '(', found 'x'");
    REQUIRE(error_of("(2 a)\r\n(3 (2 a)\r\n") ==
            "t.txt:2:9: unbalanced parentheses: expected ')' to close the '(' at column 1, "
            "found the end of the line");
  }
}

TEST_CASE("a missing SST file is an input error naming it", "[sst]") {
  TempDir dir;
  const std::string missing = dir.path + "/nope.txt";
  REQUIRE_THROWS_AS(read_sst_trees(missing), InputError);
  REQUIRE_THROWS_WITH(read_sst_trees(missing), Catch::Contains(missing));
  REQUIRE_THROWS_WITH(read_sst_texts(missing), Catch::Contains(missing));
  SECTION("a malformed file is named by its path") {
    const std::string bad = dir.write("bad.txt", "(2 a)\n(3 (2 a) (x b))\n");
    REQUIRE_THROWS_WITH(read_sst_trees(bad), bad + ":2:11: missing label: expected a label 0-4 "
                                                   "after '(', found 'x'");
  }
  SECTION("load_sst2 names the file of its directory that is missing") {
    dir.write("train.txt", "(3 a)\n");
    dir.write("test.txt", "(3 a)\n");
    REQUIRE_THROWS_WITH(load_sst2(dir.path), Catch::Contains(dir.path + "/dev.txt"));
  }
}

TEST_CASE("sst2_label drops neutral and binarises the rest", "[sst]") {
  REQUIRE(sst2_label(0) == 0);
  REQUIRE(sst2_label(1) == 0);
  REQUIRE(sst2_label(2) == -1);
  REQUIRE(sst2_label(3) == 1);
  REQUIRE(sst2_label(4) == 1);
  REQUIRE_THROWS_AS(sst2_label(5), std::invalid_argument);
  REQUIRE_THROWS_AS(sst2_label(-1), std::invalid_argument);
}

TEST_CASE("SST-2 is built the GLUE way: train phrases deduplicated, dev and test sentences",
          "[sst]") {
  TempDir dir;
  dir.write("train.txt",
            "(3 (2 a) (4 good))\n"                 // "a" is neutral
            "(1 (4 good) (0 (1 not) (2 fun)))\n"   // "good" again, same label: dropped
            "(0 (2 a) (0 good))\n"                 // "a good" and "good" conflict: first kept
            "(1 (1 good))\n"                       // "good" conflicts again: counted once
            "(2 (2 meh) (3 nice))\n"               // a neutral sentence keeps its phrases
            "(3 fun)\n");                          // neutral before does not block it
  dir.write("dev.txt", "(4 (4 great))\n(2 (2 ok))\n(0 (0 bad))\n(4 (4 great))\n");
  dir.write("test.txt", "(1 (1 meh))\n(3 (3 fine))\n");

  const Sst2 d = load_sst2(dir.path);
  REQUIRE(pairs_of(d.train) == Phrases{{"a good", 1},
                                       {"good", 1},
                                       {"good not fun", 0},
                                       {"not fun", 0},
                                       {"not", 0},
                                       {"nice", 1},
                                       {"fun", 1}});
  REQUIRE(d.train_conflicts == 2);
  REQUIRE(pairs_of(d.dev) == Phrases{{"great", 1}, {"bad", 0}, {"great", 1}});
  REQUIRE(pairs_of(d.test) == Phrases{{"meh", 0}, {"fine", 1}});

  SECTION("the pieces agree with load_sst2") {
    const auto trees = read_sst_trees(dir.path + "/train.txt");
    const Sst2Phrases p = sst2_phrases(trees);
    REQUIRE(pairs_of(p.phrases) == pairs_of(d.train));
    REQUIRE(p.conflicts == 2);
    REQUIRE(pairs_of(sst2_sentences(trees)) ==
            Phrases{{"a good", 1}, {"good not fun", 0}, {"a good", 0}, {"good", 0}, {"fun", 1}});
  }
  SECTION("read_sst_texts gives the raw sentences, neutral ones included") {
    REQUIRE(read_sst_texts(dir.path + "/dev.txt") ==
            std::vector<std::string>{"great", "ok", "bad", "great"});
  }
}

#ifdef FLOE_SOURCE_DIR
TEST_CASE("the shipped data/sst gives SST-2's counts", "[sst]") {
  const std::string dir = std::string(FLOE_SOURCE_DIR) + "/data/sst";
  const auto train = read_sst_trees(dir + "/train.txt");
  REQUIRE(train.size() == 8544);
  REQUIRE(sst2_sentences(train).size() == 6920);
  REQUIRE(read_sst_trees(dir + "/dev.txt").size() == 1101);
  REQUIRE(read_sst_trees(dir + "/test.txt").size() == 2210);
  REQUIRE(read_sst_texts(dir + "/train.txt").front() == train.front().text);

  const Sst2 d = load_sst2(dir);
  REQUIRE(d.dev.size() == 872);
  REQUIRE(d.test.size() == 1821);
  REQUIRE(d.train.size() == 77616);  // GLUE's file: 67,349 (data/sst/README.md says why)
  REQUIRE(d.train_conflicts == 0);
  REQUIRE(d.train.front().text == train.front().text);  // the first tree's root comes first
  REQUIRE(d.train.front().label == 1);
  REQUIRE(d.dev.front().text == "It 's a lovely film with lovely performances by Buy and "
                                "Accorsi .");
  REQUIRE(d.dev.front().label == 1);

  // Every escape was decoded, and every text is tokens joined by single spaces.
  std::vector<std::string> malformed;
  bool has_paren = false;
  for (const auto* split : {&d.train, &d.dev, &d.test}) {
    for (const auto& t : *split) {
      const bool ok = !t.text.empty() && t.text.front() != ' ' && t.text.back() != ' ' &&
                      t.text.find("  ") == std::string::npos &&
                      t.text.find("-LRB-") == std::string::npos &&
                      t.text.find("-RRB-") == std::string::npos &&
                      t.text.find("\\/") == std::string::npos &&
                      t.text.find("\\*") == std::string::npos;
      if (!ok) malformed.push_back(t.text);
      has_paren = has_paren || t.text.find('(') != std::string::npos;
    }
  }
  REQUIRE(malformed.empty());
  REQUIRE(has_paren);
}
#endif
