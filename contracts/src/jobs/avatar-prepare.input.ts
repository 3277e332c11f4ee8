import { IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { AVATAR_ID_MESSAGE, AVATAR_ID_PATTERN, MEDIA_REF_MESSAGE, MEDIA_REF_PATTERN } from './common';

/** Input of `avatar.prepare`: a face video or still image turned into a reusable avatar bundle. */
export class AvatarPrepareInput {
  /** Source video or still image: http(s) URL or storage key. */
  @IsString() @MaxLength(2048) @Matches(MEDIA_REF_PATTERN, { message: MEDIA_REF_MESSAGE })
  source!: string;

  /** Bundle id (stored under `avatars/{avatarId}/`); derived from the job id when absent. */
  @IsOptional() @IsString() @Matches(AVATAR_ID_PATTERN, { message: AVATAR_ID_MESSAGE })
  avatarId?: string;

  @IsOptional() @IsInt() @Min(1) @Max(60)
  fps?: number = 25;

  /** Vertical shift of the face box in pixels, as MuseTalk's `bbox_shift`. */
  @IsOptional() @IsInt() @Min(-64) @Max(64)
  bboxShift?: number = 0;
}

export interface AvatarPrepareResult {
  avatarId: string;
  manifestKey: string;
  frameCount: number;
}
