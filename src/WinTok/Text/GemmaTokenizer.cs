using Microsoft.ML.Tokenizers;

namespace WinTok.Text;

/// <summary>
/// The SentencePiece tokenizer of SigLIP2's text tower (Gemma's 256k BPE vocabulary), giving the ids the reference gets
/// from <c>AutoTokenizer.from_pretrained(folder)(texts, padding="max_length", max_length=64)</c>: no dummy prefix, spaces
/// as '▁' and never collapsed, byte fallback for unseen characters, added tokens (<c>&lt;mask&gt;</c>, ...) matched in the
/// raw text, the special tokens the files ask for (SigLIP2: no BOS, EOS appended), and pad id on the padding side.
/// </summary>
/// <remarks>
/// BPE, normalization and byte fallback are Microsoft.ML.Tokenizers' <see cref="SentencePieceTokenizer"/>, configured from
/// the model's own NormalizerSpec. What it does not do as transformers does is done here: it emits nothing for an empty
/// text (transformers still appends EOS), it knows no added tokens unless given them (they come from the HF files), and it
/// neither pads nor truncates. It also ignores a precompiled normalization map, so models that have one are refused.
/// </remarks>
internal sealed class GemmaTokenizer
{
    private readonly SentencePieceTokenizer model;
    private readonly HfTokenizerFiles files;
    private readonly string[] refusedTokens;

    private GemmaTokenizer(SentencePieceTokenizer model, HfTokenizerFiles files)
    {
        this.model = model;
        this.files = files;
        refusedTokens = files.AddedTokens.Where(t => !t.Plain).Select(t => t.Content).ToArray();
    }

    /// <summary>The files a tokenizer folder may hold, in the order they are hashed for identities.</summary>
    public static IReadOnlyList<string> FileNames { get; } = [HfTokenizerFiles.ModelFile, HfTokenizerFiles.ConfigFile, HfTokenizerFiles.JsonFile];

    public int? BosId => files.BosId;
    public int? EosId => files.EosId;
    public int PadId => files.PadId;
    public int VocabularySize => model.Vocabulary.Count;

    /// <summary>
    /// Loads <c>tokenizer.model</c> and <c>tokenizer_config.json</c> (both required) and <c>tokenizer.json</c> (when
    /// present) from <paramref name="folder"/>, an HF SigLIP2 folder or a saved tokenizer.
    /// </summary>
    /// <exception cref="FileNotFoundException">A required file is missing; the message names it.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or leaves a setting open; the message names it.</exception>
    /// <exception cref="NotSupportedException">A file asks for behaviour this port does not reproduce.</exception>
    public static GemmaTokenizer Load(string folder)
    {
        var modelPath = Path.Combine(folder, HfTokenizerFiles.ModelFile);
        if (!File.Exists(modelPath))
            throw new FileNotFoundException($"The tokenizer folder {folder} has no {HfTokenizerFiles.ModelFile} (the SentencePiece model)", modelPath);
        var bytes = File.ReadAllBytes(modelPath);
        SentencePieceModelProto proto;
        try
        {
            proto = SentencePieceModelProto.Parse(bytes);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{modelPath} is not a SentencePiece model: {e.Message}", e);
        }
        if (proto.ModelType != SentencePieceModelProto.Bpe)
            throw new NotSupportedException($"{modelPath} is a SentencePiece model of type {proto.ModelType}; Gemma's is BPE (2)");
        if (proto.CharsMapBytes > 0)
            throw new NotSupportedException(
                $"{modelPath} normalizes text with rule '{proto.NormalizerName}' (a precompiled character map), which Microsoft.ML.Tokenizers 2.0 does not apply; Gemma's is 'identity'");

        // The vocabulary is needed to resolve the HF files' token names; the added tokens then shape the real instance.
        var vocabulary = SentencePieceTokenizer.Create(new MemoryStream(bytes), addBeginningOfSentence: false, addEndOfSentence: false).Vocabulary;
        var files = HfTokenizerFiles.Read(folder, vocabulary, proto.Pieces);
        var plain = new Dictionary<string, int>();
        foreach (var token in files.AddedTokens.Where(t => t.Plain)) plain[token.Content] = token.Id;
        var model = SentencePieceTokenizer.Create(new MemoryStream(bytes), addBeginningOfSentence: false, addEndOfSentence: false, specialTokens: plain);

        var jsonPath = Path.Combine(folder, HfTokenizerFiles.JsonFile);
        if (files.Normalizer is { } normalizer && (normalizer.EscapeSpaces != model.EscapeWhiteSpaces || normalizer.DummyPrefix != model.AddDummyPrefix))
            throw new NotSupportedException(
                $"{jsonPath} normalizes differently from {modelPath}: escape spaces {normalizer.EscapeSpaces} vs {model.EscapeWhiteSpaces}, dummy prefix {normalizer.DummyPrefix} vs {model.AddDummyPrefix}");
        if (files.ByteFallback is { } fallback && fallback != model.ByteFallback)
            throw new NotSupportedException($"{jsonPath} says byte_fallback {fallback}, {modelPath} says {model.ByteFallback}");
        return new GemmaTokenizer(model, files);
    }

    /// <summary>The ids of <paramref name="text"/> without special tokens or padding.</summary>
    /// <exception cref="NotSupportedException">The text holds an added token whose matching rules are not reproduced.</exception>
    public IReadOnlyList<int> EncodeContent(string text)
    {
        foreach (var token in refusedTokens)
            if (text.Contains(token, StringComparison.Ordinal) || text.Contains(token.Replace('▁', ' '), StringComparison.Ordinal))
                throw new NotSupportedException($"'{text}' holds the added token '{token}', whose lstrip/rstrip/single_word/normalized matching is not reproduced");
        return model.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);
    }

    /// <summary>
    /// One row of exactly <paramref name="length"/> ids: special tokens around the content, then padding. Content that
    /// does not fit is cut at the end before the special tokens are added, as transformers' <c>truncation=True</c> does.
    /// The reference passes no <c>truncation</c>, so for it such a text would overflow 64 positions and fail; no
    /// ImageNet prompt comes near (the longest OpenAI prompt is far below 64 Gemma tokens).
    /// </summary>
    public int[] Encode(string text, int length)
    {
        int specials = (BosId is null ? 0 : 1) + (EosId is null ? 0 : 1);
        if (length <= specials) throw new ArgumentOutOfRangeException(nameof(length), length, $"must exceed the {specials} special tokens");
        var content = EncodeContent(text);
        int kept = Math.Min(content.Count, length - specials);
        var ids = new List<int>(length);
        if (BosId is { } bos) ids.Add(bos);
        ids.AddRange(content.Take(kept));
        if (EosId is { } eos) ids.Add(eos);
        var padding = Enumerable.Repeat(PadId, length - ids.Count);
        return files.PadLeft ? [.. padding, .. ids] : [.. ids, .. padding];
    }

    /// <summary>Rows of <see cref="Encode(string, int)"/>, flattened row-major: (texts.Count, length).</summary>
    public long[] EncodeBatch(IReadOnlyList<string> texts, int length)
    {
        var ids = new long[texts.Count * length];
        for (int i = 0; i < texts.Count; i++)
        {
            var row = Encode(texts[i], length);
            for (int j = 0; j < length; j++) ids[i * length + j] = row[j];
        }
        return ids;
    }
}
