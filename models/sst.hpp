#pragma once
// The Stanford Sentiment Treebank (Socher et al., 2013) read from its PTB-style tree files, and
// SST-2 built from it the way GLUE built its task. Plain C++17: strings and labels only; a
// tokenizer and tensors come later, elsewhere.
//
// File format, one sentence per line:  (3 (2 It) (4 (2 's) (4 (3 charming) (2 .))))
//   tree  := '(' label ( word | tree+ ) ')'     label := 0 | 1 | 2 | 3 | 4
// A node holds either exactly one word (a leaf) or one or more subtrees, never both. Tokens are
// separated by any run of spaces or tabs; a trailing '\r' and lines that are empty or only
// whitespace are ignored. Words are decoded from their PTB escapes: the whole words -LRB- -RRB-
// -LSB- -RSB- -LCB- -RCB- become ( ) [ ] { }, and inside a word "\/" becomes "/" and "\*"
// becomes "*" (the treebank escapes both); everything else, UTF-8 included, is kept byte for
// byte, case included.
//
// Text of a node: its decoded words joined by single spaces (how GLUE's SST-2 sentences look,
// except that GLUE also lowercased them). Every node's text is therefore a substring of its
// sentence's text.
//
// Errors are floe::InputError, "<path>:<line>:<column>: <what was expected>", line and column
// 1-based, the column counted in bytes (as compilers do). The column points at the offending
// byte; for a line that ends too early it is one past the line's last byte.

#include <string>
#include <vector>

namespace floe::models {

struct LabelledText {
  std::string text;
  int label;  // SST-2: 0 negative, 1 positive
};

// One node of a tree: the text it spans and its fine label.
struct SstPhrase {
  std::string text;
  int fine_label;  // 0 very negative, 1 negative, 2 neutral, 3 positive, 4 very positive
};

struct SstSentence {
  std::string text;     // the root's text
  int fine_label;       // the root's label, 0..4
  // Every node, leaves and the root included, in pre-order (the root first, then each subtree
  // left to right), so phrases[0] is the whole sentence. One entry per node: a text that two
  // nodes span (a unary chain) appears twice.
  std::vector<SstPhrase> phrases;
};

// Parses one tree file. Throws floe::InputError for a file that cannot be read, and, naming
// line and column, for: a line that does not start with '(', a missing label, a label outside
// 0..4, an empty node ("()" or "(3 )"), a node with both a word and subtrees or two words,
// unbalanced parentheses (a '(' left open at the end of the line, or a ')' with no '(' to close),
// and text after the root's closing ')'.
std::vector<SstSentence> read_sst_trees(const std::string& path);

// Same grammar, parsing `content` as if it were the file `name` (for tests and in-memory data).
std::vector<SstSentence> parse_sst_trees(const std::string& content, const std::string& name);

// Just the sentence texts of a tree file, in file order (e.g. to build a vocabulary from the
// training text). Same errors as read_sst_trees.
std::vector<std::string> read_sst_texts(const std::string& path);

// The SST-2 label of a fine label: 0, 1 -> 0; 3, 4 -> 1; 2 (neutral) -> -1, meaning "dropped".
// Throws std::invalid_argument outside 0..4.
int sst2_label(int fine_label);

struct Sst2Phrases {
  std::vector<LabelledText> phrases;
  // Distinct texts that occur again with the other binary label (the first label is kept;
  // each such text counts once however often it recurs). Neutral occurrences never conflict.
  int conflicts = 0;
};

// GLUE's SST-2 training set: every non-neutral node of every tree, binarised, each text kept
// once at its first occurrence, in order: sentences in file order, nodes in pre-order.
Sst2Phrases sst2_phrases(const std::vector<SstSentence>& sentences);

// The non-neutral sentences (roots only), binarised, in file order; duplicates are kept.
std::vector<LabelledText> sst2_sentences(const std::vector<SstSentence>& sentences);

struct Sst2 {
  std::vector<LabelledText> train;  // sst2_phrases of train.txt
  std::vector<LabelledText> dev;    // sst2_sentences of dev.txt
  std::vector<LabelledText> test;   // sst2_sentences of test.txt
  int train_conflicts = 0;          // Sst2Phrases::conflicts of train.txt
};

// SST-2 from `dir`/train.txt, dev.txt and test.txt. On data/sst of this repository: 77,616 train
// phrases with 0 conflicts, 872 dev and 1,821 test sentences (GLUE's train file has 67,349; see
// data/sst/README.md for why). Errors as read_sst_trees.
Sst2 load_sst2(const std::string& dir);

}  // namespace floe::models
