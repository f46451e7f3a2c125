#pragma once
// BERT's WordPiece tokenizer, rule for rule the BasicTokenizer + WordpieceTokenizer of Google's
// original tokenization.py (which Hugging Face's BertTokenizer copies), so that a pre-trained
// checkpoint's vocab.txt sees the pieces it was trained on; and a builder of such a vocabulary
// from plain text for when no pre-trained one exists (`floe vocab`).
//
// Basic tokenization, in this order (text is UTF-8; invalid bytes are dropped, as Python's
// decode(errors="ignore") does):
//   1. clean: drop U+0000, U+FFFD and control characters (category C*, except \t \n \r); every
//      whitespace character (\t \n \r, category Zs; also Zl/Zp, which Python's str.split()
//      splits on) becomes ' '.
//   2. CJK: a space on each side of every CJK Unified Ideograph (the blocks of tokenization.py's
//      _is_chinese_char), so each becomes a word of its own. Hangul, kana etc. are not split.
//   3. split on spaces into words; with lower_case, each word is lower-cased as Python's
//      str.lower() (simple case mapping, plus the final-sigma rule), then NFD-decomposed and its
//      nonspacing marks (category Mn) dropped: "Héllo" -> "hello". Without lower_case the word is
//      kept as is: no case change and no accent stripping (the original's do_lower_case=False;
//      Hugging Face's NFC step is not applied).
//   4. every punctuation character becomes a word of its own: ASCII 33-47, 58-64, 91-96, 123-126
//      (so $ + < = > ^ ` | ~ count although Unicode calls them symbols) and category P*.
// WordPiece then splits each word greedily, longest match first, over code points: the longest
// prefix in the vocabulary, then the longest "##"-prefixed continuation, and so on. A word that
// cannot be split completely, or that is longer than 100 code points, becomes one [UNK].
// Special tokens written in the text are not recognised ("[SEP]" is "[", "sep", "]"), as in the
// original; encode adds [CLS] and [SEP] itself.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace floe::models {

// The lines of a vocab.txt: a token's id is its line index (0-based). Build one with
// read_vocab, vocab_from_tokens or build_vocab, which check it.
struct Vocab {
  std::vector<std::string> tokens;
  std::unordered_map<std::string, int64_t> ids;
  int64_t pad = -1, unk = -1, cls = -1, sep = -1, mask = -1;  // [PAD] [UNK] [CLS] [SEP] [MASK]

  bool contains(const std::string& token) const { return ids.count(token) != 0; }
  // The token's id; unk for a token not in the vocabulary.
  int64_t id(const std::string& token) const;
  size_t size() const { return tokens.size(); }
};

// Checks a token list and indexes it. `where` names the source in error messages, which read
// "WHERE:LINE: problem" with LINE = index + 1. Throws floe::InputError for an empty list, an
// empty token, a token with a line break or invalid UTF-8, a duplicate token (naming both lines)
// and a missing [PAD], [UNK], [CLS], [SEP] or [MASK].
Vocab vocab_from_tokens(std::vector<std::string> tokens, const std::string& where);

// Reads a BERT vocab.txt: one token per line, "\n" or "\r\n" line ends, the last line's end
// optional, a UTF-8 byte-order mark skipped. Tokens are kept verbatim otherwise (as Hugging Face
// does). Throws floe::InputError naming the path (and line): unreadable, empty, or any problem
// of vocab_from_tokens.
Vocab read_vocab(const std::string& path);

// Writes one token per line, atomically (a temporary file beside `path`, then rename), so that
// read_vocab(path) gives the same tokens back. Throws floe::InputError naming the path.
void write_vocab(const Vocab& vocab, const std::string& path);

// Steps 1-4 above: the words WordPiece splits.
std::vector<std::string> basic_tokenize(const std::string& text, bool lower_case = true);

class WordPiece {
 public:
  static constexpr size_t max_word_chars = 100;  // longer words become [UNK] (tokenization.py)

  // Throws std::invalid_argument for a vocabulary without [UNK], [CLS] or [SEP] ids, i.e. one
  // not made by read_vocab, vocab_from_tokens or build_vocab.
  explicit WordPiece(Vocab vocab, bool lower_case = true);

  // The pieces of `text`: basic_tokenize, then split_word on each word.
  std::vector<std::string> tokenize(const std::string& text) const;
  // Greedy longest-match-first split of one word of basic_tokenize's output (no spaces in it):
  // {"un", "##want", "##ed"}, or {"[UNK]"} when it cannot be split or is too long.
  std::vector<std::string> split_word(const std::string& word) const;
  // [CLS] ids of tokenize(text) [SEP], the pieces truncated at the end so that the whole has at
  // most max_len ids ([SEP] stays last). Throws floe::InputError for max_len < 2.
  std::vector<int64_t> encode(const std::string& text, int64_t max_len) const;

  const Vocab& vocab() const { return vocab_; }
  bool lower_case() const { return lower_case_; }

 private:
  Vocab vocab_;
  bool lower_case_;
};

// Building a vocabulary. Why this algorithm: the result is read by the very greedy longest-match
// tokenizer above, so it is built the way Hugging Face's WordPieceTrainer builds one, as BPE
// with "##" continuations. Each word of basic_tokenize starts as its characters ("low" ->
// l ##o ##w); then, repeatedly, the adjacent pair with the highest count over the corpus (each
// word weighted by its frequency) is merged into a new token (##o ##w -> ##ow) everywhere,
// until the vocabulary holds `size` tokens or the best pair occurs fewer than min_frequency
// times. Pair counts are updated incrementally, only for the words a merge touches (a heap with
// stale entries skipped picks the best pair), so 8000 tokens from the 70k lines of SST's phrases
// take about a second rather than a recount of the whole corpus per merge.
//
// Layout, fixed so that the same corpus always gives the same file: [PAD]=0 [UNK]=1 [CLS]=2
// [SEP]=3 [MASK]=4; then every character of the corpus as a word start, in byte order; then
// "##c" for every character seen inside a word, in byte order; then the merged tokens in the
// order they were made. Ties between pairs of equal count go to the pair whose left token, then
// right token, is smallest in byte order. A merge that makes a token already present (abc from
// ab+##c and from a+##bc) adds nothing. The characters are always all kept, so the result can
// exceed `size` on a corpus with many distinct characters; every word of the corpus (up to 100
// characters) then tokenizes without [UNK]. Words longer than that are skipped.
struct VocabOptions {
  int64_t size = 8000;          // target vocabulary size, the 5 special tokens included
  int64_t min_frequency = 2;    // a pair seen fewer times is not merged
  bool lower_case = true;       // as in basic_tokenize; use the tokenizer's setting
};

// Throws floe::InputError for size < 5, min_frequency < 1, or a corpus without any word.
Vocab build_vocab(const std::vector<std::string>& corpus_lines, const VocabOptions& options);

// build_vocab over every line of the files. Throws floe::InputError naming a file that cannot
// be read, or the files when none of them holds a word.
Vocab build_vocab_from_files(const std::vector<std::string>& paths, const VocabOptions& options);

}  // namespace floe::models
