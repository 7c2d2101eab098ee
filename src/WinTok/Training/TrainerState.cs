using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>
/// Everything a <see cref="WinTokTrainer"/> needs to continue exactly where it stopped, as plain CPU tensors and
/// numbers a checkpoint writer can store as it likes. The reference saves the two state_dicts and both optimizers;
/// the rest (LeCAM EMAs, usage record counts, the blur kernel cache, gradients accumulated since the last step, the
/// random source's position) it loses on resume, and this keeps.
/// </summary>
/// <param name="NextIteration">The global iteration the next <see cref="WinTokTrainer.TrainStep"/> should run.</param>
/// <param name="Generator">The WinTok state_dict (reference keys, <c>vocab_usage</c> buffers included).</param>
/// <param name="Discriminator">The discriminator heads' state_dict (reference keys; the frozen backbone is not in it).</param>
/// <param name="GeneratorOptimizer">AdamW moments by generator parameter name.</param>
/// <param name="DiscriminatorOptimizer">AdamW moments by discriminator parameter name.</param>
/// <param name="GeneratorGradients">Gradients accumulated since the last step, by parameter name (empty at a step boundary).</param>
/// <param name="DiscriminatorGradients">The same for the discriminator.</param>
/// <param name="LecamEmaReal">The LeCAM EMA of real logits.</param>
/// <param name="LecamEmaFake">The LeCAM EMA of fake logits.</param>
/// <param name="UsageRecordCounts">Per codebook, how many forwards have updated <c>vocab_usage</c>.</param>
/// <param name="BlurKernelRadius">The radius DiffAug's cached blur kernel was built for (-1: none yet).</param>
/// <param name="BlurKernel">That cached 1-D kernel (2r+1), or null.</param>
/// <param name="RandomState">The random source's state when it can be restored (<see cref="IRestorableRandomness"/>), else null.</param>
public sealed record TrainerState(
    long NextIteration,
    IReadOnlyDictionary<string, Tensor> Generator,
    IReadOnlyDictionary<string, Tensor> Discriminator,
    IReadOnlyDictionary<string, AdamMoments> GeneratorOptimizer,
    IReadOnlyDictionary<string, AdamMoments> DiscriminatorOptimizer,
    IReadOnlyDictionary<string, Tensor> GeneratorGradients,
    IReadOnlyDictionary<string, Tensor> DiscriminatorGradients,
    double LecamEmaReal,
    double LecamEmaFake,
    IReadOnlyList<int> UsageRecordCounts,
    int BlurKernelRadius,
    Tensor? BlurKernel,
    Tensor? RandomState) : IDisposable
{
    public void Dispose()
    {
        foreach (var t in Generator.Values.Concat(Discriminator.Values).Concat(GeneratorGradients.Values).Concat(DiscriminatorGradients.Values))
            t.Dispose();
        foreach (var m in GeneratorOptimizer.Values.Concat(DiscriminatorOptimizer.Values)) m.Dispose();
        BlurKernel?.Dispose();
        RandomState?.Dispose();
    }
}
