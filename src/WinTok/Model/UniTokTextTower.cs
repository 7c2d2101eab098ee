using WinTok.Inference;
using TorchSharp;
using WinTok.Text;
using static TorchSharp.torch;

namespace WinTok.Model;

/// <summary>
/// UniTok's own text tower for zero-shot classification: the open_clip CLIP tokenizer (start and end of text, zero
/// padding to the context length) and the text transformer of the checkpoint. Built by
/// <see cref="UniTokCheckpoint.LoadTextTower"/>; owns its weights. Runs in float32 (it is small and runs once per class set).
/// </summary>
public sealed class UniTokTextTower : ITextTower
{
    private readonly ClipTextTransformer transformer;
    private readonly ClipTokenizer tokenizer;
    private Device device = CPU;

    internal UniTokTextTower(ClipTextTransformer transformer, ClipTokenizer tokenizer, string identity, int width)
    {
        (this.transformer, this.tokenizer, Identity, Width) = (transformer, tokenizer, identity, width);
        if (transformer.VocabularySize < tokenizer.VocabularySize)
            throw new ArgumentException($"The text tower embeds {transformer.VocabularySize} token ids, fewer than the CLIP tokenizer's {tokenizer.VocabularySize}");
    }

    /// <inheritdoc/>
    public int Width { get; }

    /// <inheritdoc/>
    public string Identity { get; }

    /// <summary>Tokens per prompt (77 for the release).</summary>
    public int ContextLength => transformer.ContextLength;

    /// <inheritdoc/>
    public void PrepareForInference(Device device)
    {
        if (device.type != DeviceType.CPU) transformer.to(device);
        transformer.eval();
        this.device = device;
    }

    /// <summary>The ids the reference's <c>tokenize(texts, context_length)</c> gives: (T, context) int64 on the tower's device.</summary>
    public Tensor Tokenize(IReadOnlyList<string> texts)
    {
        using var scope = NewDisposeScope();
        var ids = tokenizer.Tokenize(texts, ContextLength);
        return tensor(ids, [texts.Count, ContextLength], int64).to(device).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public Tensor EncodeTexts(IReadOnlyList<string> texts)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return transformer.call(Tokenize(texts)).MoveToOuterDisposeScope();
    }

    public void Dispose() => transformer.Dispose();
}
