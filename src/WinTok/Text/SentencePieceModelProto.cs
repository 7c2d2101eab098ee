using System.Text;

namespace WinTok.Text;

/// <summary>The kinds of piece a SentencePiece model holds (<c>SentencePiece.Type</c> in sentencepiece_model.proto).</summary>
internal enum PieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// <summary>
/// The parts of a SentencePiece <c>tokenizer.model</c> (a serialized <c>ModelProto</c>, github.com/google/sentencepiece
/// src/sentencepiece_model.proto) that Microsoft.ML.Tokenizers does not expose but the tokenizer must check or use: each
/// piece's type (control and user-defined pieces are split out of the text before BPE), the model type, and the
/// normalizer spec (a precompiled character map would mean a normalization ML.Tokenizers 2.0 does not apply).
/// </summary>
/// <param name="Pieces">Piece text and type, indexed by id.</param>
/// <param name="ModelType">TrainerSpec.model_type: 1 unigram, 2 BPE, 3 word, 4 char (1 when absent, the proto default).</param>
/// <param name="NormalizerName">NormalizerSpec.name, e.g. <c>identity</c> (Gemma) or <c>nmt_nfkc</c>.</param>
/// <param name="CharsMapBytes">Length of NormalizerSpec.precompiled_charsmap; 0 for identity normalization.</param>
internal sealed record SentencePieceModelProto(IReadOnlyList<(string Piece, PieceType Type)> Pieces, int ModelType, string NormalizerName, int CharsMapBytes)
{
    public const int Bpe = 2;

    /// <summary>Parses the protobuf wire format directly: only three messages and a handful of fields are needed.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed ModelProto.</exception>
    public static SentencePieceModelProto Parse(ReadOnlySpan<byte> bytes)
    {
        var pieces = new List<(string, PieceType)>();
        int modelType = 1;
        string normalizerName = "";
        int charsMap = 0;
        var reader = new WireReader(bytes);
        while (!reader.AtEnd)
        {
            var (field, wireType) = reader.Tag();
            switch (field, wireType)
            {
                case (1, WireReader.LengthDelimited):
                    pieces.Add(ParsePiece(reader.Bytes()));
                    break;
                case (2, WireReader.LengthDelimited):
                    modelType = ParseTrainerModelType(reader.Bytes()) ?? modelType;
                    break;
                case (3, WireReader.LengthDelimited):
                    (normalizerName, charsMap) = ParseNormalizer(reader.Bytes());
                    break;
                default:
                    reader.Skip(wireType);
                    break;
            }
        }
        return new SentencePieceModelProto(pieces, modelType, normalizerName, charsMap);
    }

    private static (string, PieceType) ParsePiece(ReadOnlySpan<byte> bytes)
    {
        string piece = "";
        var type = PieceType.Normal; // the proto default
        var reader = new WireReader(bytes);
        while (!reader.AtEnd)
        {
            var (field, wireType) = reader.Tag();
            if (field == 1 && wireType == WireReader.LengthDelimited) piece = Encoding.UTF8.GetString(reader.Bytes());
            else if (field == 3 && wireType == WireReader.Varint) type = (PieceType)reader.ReadUInt();
            else reader.Skip(wireType);
        }
        return (piece, type);
    }

    private static int? ParseTrainerModelType(ReadOnlySpan<byte> bytes)
    {
        int? modelType = null;
        var reader = new WireReader(bytes);
        while (!reader.AtEnd)
        {
            var (field, wireType) = reader.Tag();
            if (field == 3 && wireType == WireReader.Varint) modelType = (int)reader.ReadUInt();
            else reader.Skip(wireType);
        }
        return modelType;
    }

    private static (string Name, int CharsMapBytes) ParseNormalizer(ReadOnlySpan<byte> bytes)
    {
        string name = "";
        int charsMap = 0;
        var reader = new WireReader(bytes);
        while (!reader.AtEnd)
        {
            var (field, wireType) = reader.Tag();
            if (field == 1 && wireType == WireReader.LengthDelimited) name = Encoding.UTF8.GetString(reader.Bytes());
            else if (field == 2 && wireType == WireReader.LengthDelimited) charsMap = reader.Bytes().Length;
            else reader.Skip(wireType);
        }
        return (name, charsMap);
    }

    /// <summary>A cursor over protobuf wire format (https://protobuf.dev/programming-guides/encoding/).</summary>
    private ref struct WireReader(ReadOnlySpan<byte> bytes)
    {
        public const int Varint = 0;
        public const int Fixed64 = 1;
        public const int LengthDelimited = 2;
        public const int Fixed32 = 5;

        private readonly ReadOnlySpan<byte> bytes = bytes;
        private int position;

        public readonly bool AtEnd => position >= bytes.Length;

        public (int Field, int WireType) Tag()
        {
            ulong tag = ReadVarint();
            return ((int)(tag >> 3), (int)(tag & 7));
        }

        public ulong ReadUInt() => ReadVarint();

        public ReadOnlySpan<byte> Bytes()
        {
            ulong length = ReadVarint();
            if (length > (ulong)(bytes.Length - position)) throw new InvalidDataException("a length-delimited field runs past the end of its message");
            var slice = bytes.Slice(position, (int)length);
            position += (int)length;
            return slice;
        }

        public void Skip(int wireType)
        {
            switch (wireType)
            {
                case Varint: ReadVarint(); break;
                case Fixed64: Advance(8); break;
                case LengthDelimited: Bytes(); break;
                case Fixed32: Advance(4); break;
                default: throw new InvalidDataException($"unsupported protobuf wire type {wireType}");
            }
        }

        private void Advance(int count)
        {
            if (count > bytes.Length - position) throw new InvalidDataException("a fixed-width field runs past the end of its message");
            position += count;
        }

        private ulong ReadVarint()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (position >= bytes.Length) throw new InvalidDataException("a varint runs past the end of its message");
                byte b = bytes[position++];
                value |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return value;
            }
            throw new InvalidDataException("a varint is longer than 10 bytes");
        }
    }
}
