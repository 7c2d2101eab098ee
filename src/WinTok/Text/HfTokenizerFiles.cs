using System.Text.Json;

namespace WinTok.Text;

/// <summary>A token HF's tokenizers library matches in the raw text before the model sees it (an "added token").</summary>
/// <param name="Content">The text it matches.</param>
/// <param name="Id">The id it becomes.</param>
/// <param name="Plain">
/// True when the match is a plain substring match: no <c>lstrip</c>/<c>rstrip</c>/<c>single_word</c>, and matching on
/// the normalized text (<c>normalized: true</c>) gives the same as on the raw text because the content holds neither a
/// space nor '▁' (Gemma's normalizer only turns spaces into '▁'). Only plain tokens are split out; text holding any other
/// is refused rather than tokenized differently from the reference.
/// </param>
internal sealed record AddedToken(string Content, int Id, bool Plain);

/// <summary>
/// What HF's tokenizer files say beyond the SentencePiece model: special tokens added around the text, padding, and the
/// added tokens split out of the text. Read as transformers reads them: <c>tokenizer_config.json</c> first (its
/// <c>add_bos_token</c>/<c>add_eos_token</c> rebuild the post-processor in transformers 4.x), then <c>tokenizer.json</c>
/// (transformers 5 keeps the flags only there, in the post-processor).
/// </summary>
/// <param name="BosId">Prepended to every text when set.</param>
/// <param name="EosId">Appended to every text when set.</param>
/// <param name="PadId">Fills each row up to the padded length.</param>
/// <param name="PadLeft">Padding side; the reference's is right.</param>
/// <param name="AddedTokens">Tokens matched in the raw text before SentencePiece runs.</param>
/// <param name="Normalizer">What tokenizer.json's normalizer does, when the file is there, to check against the model.</param>
/// <param name="ByteFallback">tokenizer.json's <c>model.byte_fallback</c>, when the file is there.</param>
internal sealed record HfTokenizerFiles(
    int? BosId,
    int? EosId,
    int PadId,
    bool PadLeft,
    IReadOnlyList<AddedToken> AddedTokens,
    (bool EscapeSpaces, bool DummyPrefix)? Normalizer,
    bool? ByteFallback)
{
    public const string ModelFile = "tokenizer.model";
    public const string ConfigFile = "tokenizer_config.json";
    public const string JsonFile = "tokenizer.json";

    /// <summary>Reads the HF files of <paramref name="folder"/>; ids of named tokens come from <paramref name="vocabulary"/>.</summary>
    /// <param name="modelPieces">The SentencePiece model's pieces, for the added tokens when neither JSON file lists them.</param>
    /// <exception cref="FileNotFoundException"><c>tokenizer_config.json</c> is missing.</exception>
    /// <exception cref="InvalidDataException">A file is not what transformers writes, or leaves a needed setting open.</exception>
    /// <exception cref="NotSupportedException">A file asks for behaviour this port does not reproduce.</exception>
    public static HfTokenizerFiles Read(string folder, IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<(string Piece, PieceType Type)> modelPieces)
    {
        var configPath = Path.Combine(folder, ConfigFile);
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"The tokenizer folder {folder} has no {ConfigFile} (it says which special tokens to add and how to pad)", configPath);
        var jsonPath = Path.Combine(folder, JsonFile);
        using var config = ParseJson(configPath);
        using var tokenizerJson = File.Exists(jsonPath) ? ParseJson(jsonPath) : null;
        try
        {
            return Read(config.RootElement, tokenizerJson?.RootElement, configPath, jsonPath, vocabulary, modelPieces);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            // GetProperty/GetInt32/GetBoolean on a file whose structure is not what transformers writes.
            throw new InvalidDataException($"{configPath} or {jsonPath} is not shaped as transformers writes it: {e.Message}", e);
        }
    }

    private static HfTokenizerFiles Read(JsonElement c, JsonElement? t, string configPath, string jsonPath,
        IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<(string Piece, PieceType Type)> modelPieces)
    {

        int IdOf(string token, string file) => vocabulary.TryGetValue(token, out int id)
            ? id
            : throw new InvalidDataException($"{file} names the token '{token}', which is not in {ModelFile}");
        int? NamedId(string key) => TokenText(c, key) is { } token ? IdOf(token, configPath) : null;

        // The post-processor's special tokens, or null without a tokenizer.json.
        var template = t is { } root ? PostProcessor(root, jsonPath) : ((int? Bos, int? Eos)?)null;
        bool addBos = Bool(c, "add_bos_token") ?? ((template ?? throw Open(configPath, jsonPath, "add_bos_token")).Bos is not null);
        bool addEos = Bool(c, "add_eos_token") ?? ((template ?? throw Open(configPath, jsonPath, "add_eos_token")).Eos is not null);
        int? bos = addBos ? NamedId("bos_token") ?? template?.Bos ?? throw Open(configPath, jsonPath, "bos_token") : null;
        int? eos = addEos ? NamedId("eos_token") ?? template?.Eos ?? throw Open(configPath, jsonPath, "eos_token") : null;

        JsonElement? padding = t is { } r && r.TryGetProperty("padding", out var p) && p.ValueKind == JsonValueKind.Object ? p : null;
        int pad = NamedId("pad_token")
            ?? (padding is { } pd && pd.TryGetProperty("pad_id", out var pid) ? pid.GetInt32() : (int?)null)
            ?? throw Open(configPath, jsonPath, "pad_token");
        string side = String(c, "padding_side")
            ?? (padding is { } pd2 && pd2.TryGetProperty("direction", out var dir) ? dir.GetString()?.ToLowerInvariant() : null)
            ?? "right"; // PreTrainedTokenizerBase's default
        if (side is not ("right" or "left"))
            throw new InvalidDataException($"{configPath}: padding_side is '{side}', expected 'right' or 'left'");

        var added = t is { } j && j.TryGetProperty("added_tokens", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().Select(ParseAddedToken).ToList()
            : c.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object
                ? decoder.EnumerateObject().Select(e => ParseAddedToken(e.Value) with { Id = int.Parse(e.Name, System.Globalization.CultureInfo.InvariantCulture) }).ToList()
                : ModelAddedTokens(modelPieces, c, IdOf, configPath);

        return new HfTokenizerFiles(bos, eos, pad, side == "left", added,
            t is { } n ? ParseNormalizer(n, jsonPath) : null,
            t is { } m && m.TryGetProperty("model", out var model) && model.TryGetProperty("byte_fallback", out var fb) ? fb.GetBoolean() : null);
    }

    private static InvalidDataException Open(string configPath, string jsonPath, string setting) =>
        new($"Neither {configPath} nor {jsonPath} says '{setting}', so the reference tokenizer's behaviour is unknown");

    private static JsonDocument ParseJson(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
    }

    private static bool? Bool(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    private static string? String(JsonElement e, string key) =>
        e.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>A special token as tokenizer_config.json writes it: a string, or an AddedToken object with <c>content</c>.</summary>
    private static string? TokenText(JsonElement e, string key) =>
        !e.TryGetProperty(key, out var v) ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var content) ? content.GetString()
        : null;

    private static AddedToken ParseAddedToken(JsonElement e)
    {
        string content = e.GetProperty("content").GetString() ?? "";
        int id = e.TryGetProperty("id", out var idElement) ? idElement.GetInt32() : -1;
        bool Flag(string name) => Bool(e, name) ?? false;
        bool plain = !Flag("lstrip") && !Flag("rstrip") && !Flag("single_word")
            && !(Flag("normalized") && (content.Contains(' ', StringComparison.Ordinal) || content.Contains('▁', StringComparison.Ordinal)));
        return new AddedToken(content, id, plain);
    }

    /// <summary>
    /// Without a tokenizer.json, transformers converts the SentencePiece model and adds its control, unknown and
    /// user-defined pieces (Gemma's <c>&lt;pad&gt;</c>, <c>&lt;eos&gt;</c>, <c>&lt;mask&gt;</c>, ...) and the named
    /// special tokens as added tokens, all matched in the raw text.
    /// </summary>
    private static List<AddedToken> ModelAddedTokens(IReadOnlyList<(string Piece, PieceType Type)> pieces, JsonElement config,
        Func<string, string, int> idOf, string configPath)
    {
        var tokens = pieces
            .Select((p, id) => (p.Piece, p.Type, Id: id))
            .Where(p => p.Type is PieceType.Control or PieceType.Unknown or PieceType.UserDefined)
            .Select(p => new AddedToken(p.Piece, p.Id, Plain: true))
            .ToList();
        foreach (var key in new[] { "bos_token", "eos_token", "pad_token", "unk_token", "mask_token" })
            if (TokenText(config, key) is { } token && tokens.All(a => a.Content != token))
                tokens.Add(new AddedToken(token, idOf(token, configPath), Plain: true));
        return tokens;
    }

    /// <summary>The ids a TemplateProcessing post-processor puts before and after a single sequence.</summary>
    private static (int? Bos, int? Eos)? PostProcessor(JsonElement root, string path)
    {
        if (!root.TryGetProperty("post_processor", out var post) || post.ValueKind == JsonValueKind.Null) return (null, null);
        if (String(post, "type") != "TemplateProcessing")
            throw new NotSupportedException($"{path}: post_processor type '{String(post, "type")}' is not supported (only TemplateProcessing)");
        int? before = null, after = null;
        bool seenSequence = false;
        foreach (var item in post.GetProperty("single").EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out _)) { seenSequence = true; continue; }
            if (!item.TryGetProperty("SpecialToken", out var special)) continue;
            string name = special.GetProperty("id").GetString()!;
            var ids = post.GetProperty("special_tokens").GetProperty(name).GetProperty("ids");
            if (ids.GetArrayLength() != 1)
                throw new NotSupportedException($"{path}: the post-processor's special token '{name}' has {ids.GetArrayLength()} ids, expected 1");
            if (seenSequence && after is null) after = ids[0].GetInt32();
            else if (!seenSequence && before is null) before = ids[0].GetInt32();
            else throw new NotSupportedException($"{path}: the post-processor adds more than one special token on one side of the text");
        }
        return (before, after);
    }

    /// <summary>
    /// tokenizer.json's normalizer in SentencePiece terms. transformers' Gemma conversion writes <c>Replace(' ', '▁')</c>;
    /// SentencePiece models with a dummy prefix add <c>Prepend('▁')</c>. Anything else is refused.
    /// </summary>
    private static (bool EscapeSpaces, bool DummyPrefix) ParseNormalizer(JsonElement root, string path)
    {
        bool escape = false, prefix = false;
        void Visit(JsonElement n)
        {
            switch (String(n, "type"))
            {
                case "Sequence":
                    foreach (var inner in n.GetProperty("normalizers").EnumerateArray()) Visit(inner);
                    break;
                case "Replace" when n.GetProperty("pattern").TryGetProperty("String", out var s) && s.GetString() == " " && String(n, "content") == "▁":
                    escape = true;
                    break;
                case "Prepend" when String(n, "prepend") == "▁":
                    prefix = true;
                    break;
                default:
                    throw new NotSupportedException($"{path}: normalizer {n.GetRawText()} is not supported (only Replace(' ', '▁') and Prepend('▁'))");
            }
        }
        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null) Visit(normalizer);
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind != JsonValueKind.Null
            && !(String(pre, "type") == "Split" && pre.GetProperty("pattern").TryGetProperty("String", out var split) && split.GetString() == " "))
        {
            // Split on ' ' runs after the normalizer has turned every space into '▁': it never splits anything.
            throw new NotSupportedException($"{path}: pre_tokenizer {pre.GetRawText()} is not supported");
        }
        return (escape, prefix);
    }
}
