using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WinTok.Model;

// The multi-codebook cosine vector quantizer (reference models/modules/quant.py: VectorQuantizer, VectorQuantizerM),
// shared by WinTok (4 codebooks of 4096 x 8) and UniTok (8 codebooks of 4096 x 8).

/// <summary>
/// Shape and loss settings of a multi-codebook quantizer, in the reference's <c>Args</c> terms.
/// </summary>
/// <param name="NumCodebooks">K sub-quantizers, each over its own slice of the code vector.</param>
/// <param name="VocabSize">Codes summed over all codebooks (K x per-codebook size).</param>
/// <param name="VocabWidth">Code width summed over all codebooks (K x per-codebook width).</param>
/// <param name="VqBeta">Commitment weight of the VQ loss.</param>
/// <param name="EntropyWeight">The reference's <c>le</c>: the entropy loss is only computed when it is positive.</param>
/// <param name="EntropyTemperature">The reference's <c>e_temp</c>: logits are distances divided by it.</param>
public sealed record QuantizerConfig(int NumCodebooks, int VocabSize, int VocabWidth, double VqBeta, double EntropyWeight, double EntropyTemperature)
{
    public int CodebookSize => VocabSize / NumCodebooks;
    public int CodeWidth => VocabWidth / NumCodebooks;
}

/// <summary>One cosine codebook: unit-normalised code vectors, nearest code by cosine similarity.</summary>
internal sealed class VectorQuantizer : nn.Module
{
    private readonly Tensor vocab_usage; // persistent buffer: EMA of how often each code is chosen
    private readonly Embedding codebook;
    private readonly int size;
    private int usageRecordTimes; // a plain counter in the reference too: not saved, so resuming resets it

    public VectorQuantizer(int size, int width) : base(nameof(VectorQuantizer))
    {
        this.size = size;
        vocab_usage = zeros(size);
        codebook = nn.Embedding(size, width);
        RegisterComponents();
    }

    /// <summary>How many forwards have updated <c>vocab_usage</c>: it picks the update's EMA weight (copy, 0.9, 0.99).</summary>
    public int UsageRecordTimes
    {
        get => usageRecordTimes;
        set => usageRecordTimes = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "A record count cannot be negative");
    }

    public Tensor NormalizedCodes() => F.normalize(codebook.weight!, p: 2, dim: 1).to(float32);

    /// <summary>Nearest code per row: (M, w) features -> (M) ids; ties go to the first maximum, as torch.argmax does.</summary>
    public Tensor Indices(Tensor features, Tensor codes)
    {
        using var scope = NewDisposeScope();
        return features.detach().matmul(codes.t()).argmax(1).MoveToOuterDisposeScope();
    }

    public Tensor Lookup(Tensor indices) => NormalizedCodes().index_select(0, indices.flatten());

    /// <summary>
    /// Training/encode forward of one chunk: (B, L, w) -> quantized (B, L, w), ids (B, L), VQ loss, entropy loss (or
    /// null), usage percentage; updates the usage buffer as the reference does on every forward, eval included.
    /// </summary>
    public (Tensor Quantized, Tensor Indices, Tensor VqLoss, Tensor? EntropyLoss, Tensor Usage) Quantize(
        Tensor chunk, double beta, double? inverseTemperature)
    {
        using var scope = NewDisposeScope();
        var (b, l, c) = (chunk.shape[0], chunk.shape[1], chunk.shape[2]);
        var features = F.normalize(chunk.reshape(-1, c), p: 2, dim: -1).to(float32);
        var codes = NormalizedCodes();
        var indices = Indices(features, codes);
        Tensor? entropy = inverseTemperature is { } inv ? EntropyLoss(features, codes, inv) : null;
        var quantized = codes.index_select(0, indices);

        var vqLoss = F.mse_loss(quantized.detach(), features) * beta + F.mse_loss(quantized, features.detach());
        // Straight-through estimator, written as the reference writes it so the forward value rounds identically.
        var straightThrough = (quantized.detach() - features.detach()) + features;

        var usage = UpdateUsage(indices);
        var outputs = (straightThrough.view(b, l, c), indices.view(b, l), vqLoss, entropy, usage);
        outputs.Item1.MoveToOuterDisposeScope();
        outputs.Item2.MoveToOuterDisposeScope();
        vqLoss.MoveToOuterDisposeScope();
        entropy?.MoveToOuterDisposeScope();
        usage.MoveToOuterDisposeScope();
        return outputs;
    }

    /// <summary>Per-sample entropy minus codebook entropy of softmax(-squared distance / temperature).</summary>
    private static Tensor EntropyLoss(Tensor features, Tensor codes, double inverseTemperature)
    {
        var distances = features.square().sum(1, keepdim: true) + codes.square().sum(1);
        distances = addmm(distances, features, codes.t(), beta: 1, alpha: -2); // (M, V)
        var logits = -(distances.to(float32) * inverseTemperature);
        var probabilities = logits.softmax(-1);
        var logProbabilities = logits.log_softmax(-1);
        var perSample = (-probabilities * logProbabilities).sum(-1).mean();
        var average = probabilities.mean([0]);
        var codebookEntropy = (-average * (average + 1e-7).log()).sum();
        return perSample - codebookEntropy;
    }

    private Tensor UpdateUsage(Tensor indices)
    {
        using var noGrad = no_grad();
        var chosen = indices.bincount(null, size).to(float32);
        chosen = chosen / chosen.sum();
        var usage = (chosen > 0.01 / size).to(float32).mean() * 100;
        if (usageRecordTimes == 0) vocab_usage.copy_(chosen);
        else if (usageRecordTimes < 100) vocab_usage.mul_(0.9).add_(chosen, alpha: 0.1);
        else vocab_usage.mul_(0.99).add_(chosen, alpha: 0.01);
        usageRecordTimes++;
        return usage;
    }
}

/// <summary>K cosine codebooks, each quantizing its own slice of the code vector (reference <c>VectorQuantizerM</c>).</summary>
internal sealed class VectorQuantizerM : nn.Module, IInferenceModule
{
    private readonly ModuleList<VectorQuantizer> codebooks;
    private readonly QuantizerConfig config;
    private InferenceKernels kernels = InferenceKernels.Torch;

    public VectorQuantizerM(QuantizerConfig config) : base(nameof(VectorQuantizerM))
    {
        this.config = config;
        codebooks = nn.ModuleList(Enumerable.Range(0, config.NumCodebooks)
            .Select(_ => new VectorQuantizer(config.CodebookSize, config.CodeWidth)).ToArray());
        RegisterComponents();
    }

    public void PrepareForInference(InferenceKernels kernels) => this.kernels = kernels;

    public void ResetForTraining() => kernels = InferenceKernels.Torch;

    /// <summary>Each codebook's usage record count (not in the state_dict, as in the reference).</summary>
    public IReadOnlyList<int> UsageRecordCounts
    {
        get => codebooks.Select(book => book.UsageRecordTimes).ToArray();
        set
        {
            if (value.Count != codebooks.Count)
                throw new ArgumentException($"Expected {codebooks.Count} usage record counts, one per codebook, got {value.Count}");
            for (var i = 0; i < value.Count; i++) codebooks[i].UsageRecordTimes = value[i];
        }
    }

    /// <summary>(B, L, K*w) -> ids (B, K, L), per-codebook ids in [0, V/K).</summary>
    public Tensor FeaturesToIndices(Tensor features)
    {
        using var scope = NewDisposeScope();
        if (kernels.CodeSearch is { } search
            && search.TryNearest(features, stack(codebooks.Select(book => book.NormalizedCodes()).ToArray()), out var found))
            return found.MoveToOuterDisposeScope();
        var (b, l) = (features.shape[0], features.shape[1]);
        var chunks = features.split(config.CodeWidth, -1);
        var ids = codebooks.Select((book, i) =>
        {
            var f = F.normalize(chunks[i].reshape(-1, config.CodeWidth), p: 2, dim: -1).to(float32);
            return book.Indices(f, book.NormalizedCodes()).view(b, l);
        }).ToArray();
        return stack(ids, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Ids (B, K, L) -> normalised code vectors (B, L, K*w).</summary>
    public Tensor IndicesToFeatures(Tensor indices)
    {
        using var scope = NewDisposeScope();
        if (indices.dim() != 3 || indices.shape[1] != config.NumCodebooks)
            throw new ArgumentException($"Indices must be (B, {config.NumCodebooks}, L), got ({string.Join(", ", indices.shape)})");
        var (b, l) = (indices.shape[0], indices.shape[2]);
        var parts = codebooks.Select((book, i) => book.Lookup(indices[.., i]).view(b, l, config.CodeWidth)).ToArray();
        return cat(parts, -1).MoveToOuterDisposeScope();
    }

    public QuantizerOutput Quantize(Tensor features)
    {
        using var scope = NewDisposeScope();
        double? inverseTemperature = config.EntropyWeight > 0 ? 1.0 / config.EntropyTemperature : null;
        var chunks = features.split(config.CodeWidth, -1);
        var results = codebooks.Select((book, i) => book.Quantize(chunks[i], config.VqBeta, inverseTemperature)).ToArray();
        var k = config.NumCodebooks;
        Tensor Mean(IEnumerable<Tensor> values) => values.Aggregate((a, v) => a + v) / k;
        var output = new QuantizerOutput(
            cat(results.Select(r => r.Quantized).ToArray(), -1),
            stack(results.Select(r => r.Indices).ToArray(), 1),
            Mean(results.Select(r => r.VqLoss)),
            inverseTemperature is null ? zeros(1).squeeze() : Mean(results.Select(r => r.EntropyLoss!)),
            Mean(results.Select(r => r.Usage)));
        return output.MoveToOuterDisposeScope();
    }
}

internal sealed record QuantizerOutput(Tensor Quantized, Tensor Indices, Tensor VqLoss, Tensor EntropyLoss, Tensor Usage)
{
    public QuantizerOutput MoveToOuterDisposeScope()
    {
        foreach (var t in new[] { Quantized, Indices, VqLoss, EntropyLoss, Usage }) t.MoveToOuterDisposeScope();
        return this;
    }
}
